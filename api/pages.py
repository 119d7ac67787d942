"""HTML pages for people (the JSON routes are in `api.routes`).

`GET /sessions/{id}/report.html` is the same report as `/sessions/{id}/report`, rendered as one
self-contained page (see `api.report_page`): open it in a browser, print it to PDF, mail it.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from api.deps import AppDep, require_api_key
from api.report_page import render_report_html

pages_router = APIRouter(dependencies=[Depends(require_api_key)])


@pages_router.get(
    "/sessions/{session_id}/report.html",
    response_class=HTMLResponse,
    tags=["sessions"],
    summary="The session's report as a self-contained HTML page",
    responses={200: {"content": {"text/html": {}}, "description": "The report page"}},
)
async def report_page(session_id: uuid.UUID, app: AppDep) -> HTMLResponse:
    """Questions, answers, scores, criteria bars, flags and analyses on one printable page.

    The page loads nothing from anywhere (inline styles and SVG, a Content-Security-Policy
    that forbids requests) and is written in the interview's language.
    """
    report = await app.interviews.report(session_id)
    return HTMLResponse(render_report_html(report))
