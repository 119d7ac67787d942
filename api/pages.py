"""HTML pages for people (the JSON routes are in `api.routes`).

`GET /sessions/{id}/report.html` is the same report as `/sessions/{id}/report`, rendered as one
self-contained page (see `api.report_page`): open it in a browser, print it to PDF, mail it.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import ApiKeyRoute, AppDep, TenantDep
from api.report_page import render_report_html
from api.responses import error_responses

pages_router = APIRouter(route_class=ApiKeyRoute)


def _json_errors(
    *codes: int, only: dict[int, tuple[str, ...]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`error_responses` for an HTML route: errors stay JSON (`ErrorOut`).

    FastAPI files a response's `model` under the route's media type, text/html here, so the
    schema is given by reference instead.
    """
    out = error_responses(*codes, only=only)
    for spec in out.values():
        spec.pop("model")
        spec["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/ErrorOut"}
    return out


@pages_router.get(
    "/sessions/{session_id}/report.html",
    response_class=HTMLResponse,
    tags=["sessions"],
    summary="The session's report as a self-contained HTML page",
    responses={
        200: {"content": {"text/html": {}}, "description": "The report page"},
        **_json_errors(401, 404, 422, only={422: ("session_id",)}),
    },
)
async def report_page(session_id: uuid.UUID, app: AppDep, caller: TenantDep) -> HTMLResponse:
    """Questions, answers, scores, criteria bars, flags and analyses on one printable page.

    The page loads nothing from anywhere (inline styles and SVG, a Content-Security-Policy
    that forbids requests) and is written in the interview's language.
    """
    report = await app.interviews.report(session_id, tenant=caller.tenant)
    return HTMLResponse(render_report_html(report))
