"""`turnjudge calibrate` end to end on the small fixture, with the real heuristic judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.settings import get_settings

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "data" / "calibration_labels.jsonl"
runner = CliRunner()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LLM endpoint configured; settings re-read from this environment."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("JUDGE", "auto")
    get_settings.cache_clear()


def test_calibrate_writes_the_reports(tmp_path: Path) -> None:
    report, data = tmp_path / "report.md", tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            "calibrate",
            str(FIXTURE),
            "--report",
            str(report),
            "--json",
            str(data),
            "--resamples",
            "200",
            "--concurrency",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    parsed = json.loads(data.read_text("utf-8"))
    (judge,) = parsed["judges"]
    assert judge["name"] == "heuristic" and judge["judge"]["kind"] == "heuristic"
    assert judge["evaluated"] == 8 and judge["failures"] == {}
    assert set(judge["agreement"]) == {"all", "en", "ko"}
    overall = judge["agreement"]["all"]
    assert overall["n"] == 8
    # Every pair of the fixture is 20+ points apart within its question: 6 + 6 pairs.
    assert overall["pairs"] == 12
    assert set(overall["statistics"]) == {
        "spearman",
        "kendall",
        "qwk",
        "mae",
        "bias",
        "pair_accuracy",
    }
    scores = {item["id"]: item["scores"]["heuristic"] for item in parsed["items"]}
    assert all(0 <= score <= 100 for score in scores.values())
    mae = sum(abs(scores[item["id"]] - item["human"]) for item in parsed["items"]) / 8
    assert overall["statistics"]["mae"]["value"] == pytest.approx(mae)
    assert parsed["comparisons"] == []
    text = report.read_text("utf-8")
    assert text.startswith("# Judge calibration against human labels")
    assert "| en | 4 |" in text and "| ko | 4 |" in text


def test_a_bad_label_file_is_one_error_line(tmp_path: Path) -> None:
    lines = FIXTURE.read_text("utf-8").splitlines()
    lines[2] = lines[2].replace('"score": 50', '"score": 150')
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines), encoding="utf-8")
    result = runner.invoke(app, ["calibrate", str(broken)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {broken}:3: field 'score': Input should be less than or equal to 100"
    )


def test_the_llm_judge_needs_an_endpoint() -> None:
    result = runner.invoke(app, ["calibrate", str(FIXTURE), "--judge", "llm"])
    assert result.exit_code == 1
    assert result.output.startswith("error: JUDGE=llm needs OPENAI_API_KEY or OPENAI_BASE_URL")


def test_an_unknown_judge_is_a_usage_error() -> None:
    result = runner.invoke(app, ["calibrate", str(FIXTURE), "--judge", "oracle"])
    assert result.exit_code == 2
    assert "choose heuristic or llm" in result.output


def test_two_judges_against_the_local_openai_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.openai_stub import OpenAIStub

    data = tmp_path / "report.json"
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("LLM_MODEL", "stub")
        get_settings.cache_clear()
        result = runner.invoke(
            app,
            [
                "calibrate",
                str(FIXTURE),
                "-j",
                "heuristic",
                "-j",
                "llm",
                "--json",
                str(data),
                "--resamples",
                "100",
            ],
        )
        calls = stub.calls
    assert result.exit_code == 0, result.output
    parsed = json.loads(data.read_text("utf-8"))
    assert [j["name"] for j in parsed["judges"]] == ["heuristic", "llm"]
    llm = parsed["judges"][1]
    assert llm["judge"]["kind"] == "llm" and llm["evaluated"] == 8
    assert 1 <= calls <= 8 * 3  # the guards may settle clear cases without a call
    (comparison,) = parsed["comparisons"]
    assert (comparison["first"], comparison["second"]) == ("heuristic", "llm")
    assert comparison["agreement"]["all"]["n"] == 8
    assert "## Judge `llm` vs judge `heuristic`" in result.output
