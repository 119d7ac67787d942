"""`api.calibration`: label validation, statistics checked against hand computations, reports.

The judges here are stand-ins that implement the `Judge` protocol and return chosen scores,
so every statistic can be computed by hand; the real heuristic judge runs in
test_calibrate_cli.py and on the shipped labels in the notebook test.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from api.calibration.bands import BAND_NAMES, band_index, band_name
from api.calibration.labels import Label, LabelError, load_labels, parse_labels
from api.calibration.metrics import agreement, same_question_pairs
from api.calibration.report import to_json, to_markdown
from api.calibration.runner import Calibration, calibrate, case_of, run_judge
from nodes.judges.details import EvaluationDetails, JudgeInfo
from nodes.judges.judge import FlowCase, JudgeError, TurnCase

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "calibration_labels.jsonl"
SHIPPED = ROOT / "notebooks" / "data" / "labels.jsonl"


class ScriptedJudge:
    """A judge whose score for an answer is `score_of(label)`; raises for `fail_on`."""

    def __init__(
        self,
        labels: list[Label],
        score_of: Callable[[Label], float],
        fail_on: frozenset[str] = frozenset(),
    ) -> None:
        self._by_answer = {label.answer: label for label in labels}
        self._score_of = score_of
        self._fail_on = fail_on
        self.calls = 0

    @property
    def kind(self) -> str:
        return "heuristic"

    async def evaluate_turn(self, case: TurnCase) -> EvaluationDetails:
        self.calls += 1
        label = self._by_answer[case.answer]
        assert (case.position, case.language, case.question) == (
            label.position,
            label.language,
            label.question,
        )
        if label.id in self._fail_on:
            raise JudgeError("upstream gave up", attempts=3)
        return EvaluationDetails(
            score=self._score_of(label),
            analysis="scripted",
            judge=JudgeInfo(kind="heuristic", model="scripted", prompt_version="t1"),
        )

    async def evaluate_flow(self, case: FlowCase) -> EvaluationDetails:
        raise NotImplementedError


@pytest.fixture(scope="module")
def labels() -> list[Label]:
    return load_labels(FIXTURE)


def stat(calibration: Calibration, name: str, key: str = "all", judge: int = 0) -> float | None:
    return calibration.judges[judge].agreement[key].statistics[name].value


# ---------------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0, "missing"),
        (20, "missing"),
        (20.5, "weak"),
        (21, "weak"),
        (40, "weak"),
        (41, "adequate"),
        (60, "adequate"),
        (61, "good"),
        (80, "good"),
        (80.1, "excellent"),
        (100, "excellent"),
    ],
)
def test_bands_are_the_llm_prompts_five_bands(score: float, band: str) -> None:
    assert band_name(score) == band
    assert BAND_NAMES[band_index(score)] == band


# ---------------------------------------------------------------------------- statistics


async def test_perfect_judge(labels: list[Label]) -> None:
    judge = ScriptedJudge(labels, lambda label: label.score)
    result = await calibrate("fixture", labels, {"perfect": judge}, resamples=200)
    assert judge.calls == len(labels)
    for key in ("all", "en", "ko"):
        assert stat(result, "qwk", key) == pytest.approx(1.0)
        assert stat(result, "mae", key) == 0.0
        assert stat(result, "bias", key) == 0.0
        assert stat(result, "spearman", key) == pytest.approx(1.0)
        assert stat(result, "kendall", key) == pytest.approx(1.0)
        assert stat(result, "pair_accuracy", key) == 1.0
    confusion = result.judges[0].agreement["all"].confusion
    # Fixture bands: 10, 30, 50, 70 (en) and 10, 30, 50, 90 (ko).
    assert [confusion[i][i] for i in range(5)] == [2, 2, 2, 1, 1]
    assert sum(map(sum, confusion)) == 8


async def test_inverted_judge_has_negative_rank_correlation(labels: list[Label]) -> None:
    judge = ScriptedJudge(labels, lambda label: 100 - label.score)
    result = await calibrate("fixture", labels, {"inverted": judge}, resamples=200)
    assert stat(result, "spearman") == pytest.approx(-1.0)
    assert stat(result, "kendall") == pytest.approx(-1.0)
    assert (stat(result, "qwk") or 0) < 0
    assert stat(result, "pair_accuracy") == 0.0
    # |100 - 2h| over the fixture's scores (10, 30, 50, 70, 10, 30, 50, 90), by hand.
    assert stat(result, "mae") == pytest.approx((80 + 40 + 0 + 40 + 80 + 40 + 0 + 80) / 8)


def test_statistics_match_a_hand_computation() -> None:
    human = [10.0, 30.0, 50.0, 70.0]  # bands 0, 1, 2, 3
    judge = [10.0, 30.0, 70.0, 70.0]  # bands 0, 1, 3, 3
    got = agreement(human, judge, groups=["q"] * 4, resamples=500, seed=7)
    s = {name: e.value for name, e in got.statistics.items()}
    # Quadratic weights w_ij = (i - j)^2 / 16. Observed disagreement: one item in (2, 3),
    # weight 1/16, over N = 4. Expected, from the margins rows (1,1,1,1,0) and columns
    # (1,1,0,2,0): sum_ij w_ij r_i c_j / N^2 = 48/64 / 4 (worked out row by row:
    # 19/64 + 9/64 + 7/64 + 13/64). kappa = 1 - (1/16) / (48/64) = 11/12.
    assert s["qwk"] == pytest.approx(11 / 12)
    assert s["mae"] == pytest.approx(5.0)
    assert s["bias"] == pytest.approx(5.0)
    # Ranks (1, 2, 3, 4) against (1, 2, 3.5, 3.5): Pearson of the ranks.
    assert s["spearman"] == pytest.approx(4.5 / math.sqrt(5 * 4.5))
    # tau-b: 5 concordant, 0 discordant, 1 pair tied in the judge only.
    assert s["kendall"] == pytest.approx(5 / math.sqrt(6 * 5))
    # All 6 pairs have a human gap > 10; the judge ties one (70, 70): 5.5 / 6.
    assert got.pairs == 6
    assert s["pair_accuracy"] == pytest.approx(5.5 / 6)
    for name, estimate in got.statistics.items():
        assert estimate.low is not None and estimate.high is not None, name
        assert estimate.low <= estimate.value <= estimate.high, name  # type: ignore[operator]


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    human = [5.0, 25, 45, 65, 85, 15, 35, 55, 75, 95]
    judge = [12.0, 20, 50, 58, 90, 30, 31, 70, 60, 88]
    first = agreement(human, judge, resamples=300, seed=1)
    assert agreement(human, judge, resamples=300, seed=1) == first
    assert agreement(human, judge, resamples=300, seed=2) != first


def test_pairs_need_the_same_question_and_a_gap() -> None:
    scores = [50.0, 60.1, 70.0, 90.0]
    assert same_question_pairs(["a", "a", "b", "b"], scores, 10) == [(1, 0), (3, 2)]
    assert same_question_pairs(["a"] * 4, scores, 15) == [(2, 0), (3, 0), (3, 1), (3, 2)]


def test_undefined_statistics_are_none_not_nan() -> None:
    got = agreement([50.0, 50.0, 50.0], [10.0, 20.0, 30.0], groups=["q"] * 3, resamples=100)
    assert got.statistics["spearman"].value is None
    assert got.statistics["spearman"].low is None
    assert got.statistics["mae"].value == pytest.approx(30.0)
    assert got.pairs == 0 and got.statistics["pair_accuracy"].value is None
    assert agreement([], [], resamples=100).n == 0


# ---------------------------------------------------------------------------- runner


async def test_failed_items_are_reported_and_left_out(labels: list[Label]) -> None:
    judge = ScriptedJudge(labels, lambda label: label.score, fail_on=frozenset({"fx-ko-4"}))
    cases = {label.id: case_of(label) for label in labels}
    run = await run_judge("flaky", judge, cases, concurrency=3)
    assert set(run.failures) == {"fx-ko-4"} and "upstream gave up" in run.failures["fx-ko-4"]
    assert len(run.scores) == 7
    assert run.judge == {"kind": "heuristic", "model": "scripted", "prompt_version": "t1"}


async def test_two_judges_are_compared(labels: list[Label]) -> None:
    perfect = ScriptedJudge(labels, lambda label: label.score)
    generous = ScriptedJudge(labels, lambda label: min(100.0, label.score + 10))
    result = await calibrate("fixture", labels, {"a": perfect, "b": generous}, resamples=200)
    (comparison,) = result.comparisons
    assert (comparison.first, comparison.second) == ("a", "b")
    both = comparison.agreement["all"].statistics
    assert both["bias"].value == pytest.approx(10.0)
    assert both["spearman"].value == pytest.approx(1.0)
    assert stat(result, "bias", judge=1) == pytest.approx(10.0)

    data = to_json(result)
    json.dumps(data)  # plain JSON
    assert data["labels"]["n"] == 8 and data["labels"]["by_language"] == {"en": 4, "ko": 4}
    assert data["judges"][1]["agreement"]["ko"]["statistics"]["bias"]["value"] == 10.0
    assert data["items"][0] == {
        "id": "fx-en-1",
        "position": "backend",
        "language": "en",
        "band": "missing",
        "human": 10.0,
        "scores": {"a": 10.0, "b": 20.0},
    }
    text = to_markdown(result)
    assert "## Judge `a` vs human" in text and "## Judge `b` vs judge `a`" in text
    assert "| all | 8 | 1.00 [" in text


# ---------------------------------------------------------------------------- labels


LINE = {"position": "backend", "language": "en", "question": "Q?", "answer": "A.", "score": 55}


def bad(**changes: object) -> str:
    line = {**LINE, **changes}
    return json.dumps({k: v for k, v in line.items() if v is not ...})


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (bad(score="55"), "score", "valid number"),
        (bad(score=True), "score", "valid number"),
        (bad(score=101), "score", "less than or equal to 100"),
        (bad(score=-1), "score", "greater than or equal to 0"),
        (
            '{"position": "backend", "language": "en", "question": "Q?", "answer": "A.", '
            '"score": NaN}',
            "score",
            "finite",
        ),
        (bad(score=...), "score", "Field required"),
        (bad(scroe=50), "scroe", "unknown field"),
        (bad(position="qa"), "position", "unknown position 'qa'"),
        (bad(language="fr"), "language", "'en' or 'ko'"),
        (bad(question="   "), "question", "blank"),
        (bad(answer=None), "answer", "valid string"),
        (bad(answer="a\x00b"), "answer", "NUL"),
        (bad(band="great"), "band", "unknown band 'great'"),
        (bad(band="weak"), "band", "disagrees with score 55"),
        (bad(rater=""), "rater", "at least 1 character"),
    ],
)
def test_a_bad_label_names_its_line_and_field(line: str, field: str, message: str) -> None:
    good = json.dumps(LINE)
    with pytest.raises(LabelError) as caught:
        parse_labels(Path("labels.jsonl"), [good, "", line])
    assert caught.value.line == 3 and caught.value.field == field
    assert str(caught.value).startswith(f"labels.jsonl:3: field {field!r}:")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["{not json"], 1, "not valid JSON"),
        (["[1, 2]"], 1, "must be a JSON object"),
        ([], None, "no labels"),
        (["", "  "], None, "no labels"),
        ([bad(id="x"), bad(id="x")], 2, "duplicate id 'x' (first on line 1)"),
    ],
)
def test_file_level_errors(lines: list[str], line: int | None, message: str) -> None:
    with pytest.raises(LabelError) as caught:
        parse_labels(Path("labels.jsonl"), lines)
    assert caught.value.line == line
    assert message in str(caught.value)


def test_unreadable_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(json.dumps(LINE).replace("A.", "caf\u00e9").encode("latin-1"))
    with pytest.raises(LabelError, match="not UTF-8"):
        load_labels(latin)
    with pytest.raises(LabelError, match="cannot be read"):
        load_labels(tmp_path / "missing.jsonl")


def test_defaults_and_band_derivation() -> None:
    (label,) = parse_labels(Path("x"), ["", json.dumps({**LINE, "score": 80})])
    assert label.id == "line-2" and label.band == "good" and label.rater is None


def test_the_shipped_labels_cover_what_the_guide_promises() -> None:
    labels = load_labels(SHIPPED)
    assert len(labels) >= 150
    assert Counter(label.language for label in labels).keys() == {"en", "ko"}
    assert min(Counter(label.language for label in labels).values()) >= 70
    assert set(Counter(label.position for label in labels)) == {
        "backend",
        "data_ml",
        "devops",
        "frontend",
        "product",
    }
    bands = Counter(label.band for label in labels)
    assert all(bands[name] >= 10 for name in BAND_NAMES), bands
    assert {label.rater for label in labels} == {"turnjudge-team"}
    assert all(label.note for label in labels)
    by_question = Counter(label.question for label in labels)
    assert min(by_question.values()) >= 5  # every question yields better/worse pairs
