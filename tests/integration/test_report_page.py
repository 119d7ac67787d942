"""The HTML report and the API docs, checked in a real headless Chromium.

The report must render (not blank), in the interview's language, with no console error and no
request leaving the page, and candidate text must stay text (no markup or script from it).
The docs (/docs, /redoc) must work offline: every asset from the server itself.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.report_page import score_chart
from api.settings import Settings
from storage.services import Storage
from tests.support.browser import visit
from tests.support.http import app_client

pytestmark = pytest.mark.integration

HOSTILE = '<script>console.error("xss")</script><img src="http://198.51.100.7/x.png">'

TRANSCRIPTS = {
    "en": [
        {
            "question": "How would you design an idempotent payments API?",
            "answer": "Each request carries an idempotency key; a unique index and INSERT ON "
            "CONFLICT make a retry return the first result. At my last job this removed "
            "duplicate charges and kept p95 at 90 ms. " + HOSTILE,
        },
        {
            "question": "How do you find a slow PostgreSQL query?",
            "answer": "pg_stat_statements for the top queries by total time, then EXPLAIN "
            "ANALYZE with BUFFERS; a missing composite index took one report from 4 s to 80 ms.",
        },
    ],
    "ko": [
        {
            "question": "캐시 무효화 전략을 설명해 주세요.",
            "answer": "쓰기 시 캐시 키를 삭제하고 TTL을 짧게 두었습니다. 이전 회사에서 Redis "
            "캐시 적중률을 92%까지 올렸고, 데이터 불일치 문의가 거의 사라졌습니다.",
        },
        {
            "question": "장애 대응 경험을 말씀해 주세요.",
            "answer": "결제 서버의 커넥션 풀이 고갈된 장애였습니다. 원인은 트랜잭션 안의 외부 "
            "API 호출이었고, 호출을 트랜잭션 밖으로 옮긴 뒤 타임아웃과 알림을 추가했습니다.",
        },
    ],
}


@pytest.fixture
async def client(storage: Storage, offline_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(storage, offline_settings) as (_, c):
        yield c


async def _report_html(client: httpx.AsyncClient, language: str) -> str:
    submitted = await client.post(
        "/submissions",
        json={
            "participant_id": f"p-report-{language}",
            "position": "backend",
            "language": language,
            "transcript": TRANSCRIPTS[language],
        },
    )
    assert submitted.status_code == 200, submitted.text
    session_id = submitted.json()["session_id"]
    page = await client.get(f"/sessions/{session_id}/report.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    return page.text


@pytest.mark.parametrize("language", ["en", "ko"])
async def test_report_page_in_chromium(
    client: httpx.AsyncClient, language: str, tmp_path: Path
) -> None:
    html = await _report_html(client, language)
    assert "<script" not in html  # candidate markup is escaped, the page has no script
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")

    page = await visit(path.as_uri(), tmp_path / "report.png")

    assert page.console_errors == []
    # Nothing else fetched, not even the hostile <img>.
    assert [url for url, _ in page.requests] == [path.as_uri()]
    assert page.distinct_colours() > 20  # text, bars and the chart, not a blank page
    heading = "면접 평가 보고서" if language == "ko" else "Interview report"
    assert heading in page.title and heading in page.text
    for turn in TRANSCRIPTS[language]:
        assert turn["question"] in page.text
    if language == "en":
        assert HOSTILE in page.text  # shown as text, exactly as the candidate wrote it


async def test_report_page_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/sessions/00000000-0000-4000-8000-000000000000/report.html")
    assert response.status_code == 404


def test_score_chart_has_one_tick_per_turn() -> None:
    chart = score_chart([(1, 40.0), (2, 80.0), (3, 100.0)])
    assert [point.turn for point in chart.points] == [1, 2, 3]
    xs = [point.x for point in chart.points]
    assert xs == sorted(xs) and xs[0] == chart.margin and xs[-1] == chart.width - chart.margin
    assert chart.points[2].y == chart.margin  # 100 at the top of the plot
    single = score_chart([(1, 50.0)])
    assert single.points[0].x == chart.width / 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def docs_server(offline_settings: Settings) -> Iterator[str]:
    """The app on a loopback port; the docs need no database, so the lifespan is off."""
    app: FastAPI = create_app(offline_settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ReDoc's "API docs by Redocly" footer always tries a logo from its CDN; offline the image
# fails (one console error for that image alone) and ReDoc hides it. Every script, style sheet
# and font comes from this server.
@pytest.mark.parametrize(
    ("path", "drawn", "decorative"),
    [("/docs", ".opblock", ()), ("/redoc", "[data-section-id]", ("image",))],
)
async def test_api_docs_work_offline(
    docs_server: str, path: str, drawn: str, decorative: tuple[str, ...], tmp_path: Path
) -> None:
    page = await visit(docs_server + path, tmp_path / "docs.png", wait_for=drawn)
    assert page.foreign_requests(docs_server, ignore_types=decorative) == []
    assert any(url.endswith((".js", ".css")) for url, _ in page.requests)
    decorations = set(page.foreign_requests(docs_server)) - set(
        page.foreign_requests(docs_server, decorative)
    )
    assert [error for error in page.console_errors if error[1] not in decorations] == []
    assert "turnjudge" in page.text and "/interviews" in page.text
    assert page.distinct_colours() > 20
