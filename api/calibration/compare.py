"""`turnjudge compare`: several judges' scores per turn on stored sessions, stored nowhere.

Calibration (`runner`) asks how far a judge agrees with humans; this asks how far two judges
agree with each other on real interviews: the transcripts already in PostgreSQL (question,
answer, position, language, and the bank question's category when the turn came from the
bank) are evaluated again by each judge as node 4 (TURN_EVAL) and node 6a (HOLISTIC_FLOW)
call them (the judge looks the question's expected points up in the bank, as in the graph;
an LLM-written question's points live only in the run's checkpoint, so its turn is graded
against the position's rubric, see README limits), and nothing is written: the partial
unique indexes allow one TURN_EVAL per turn, so a second opinion has no row to go to, and a
report must not change what it reports on.

Judges: `heuristic` and `llm` are built by the graph's factory (`runner.judges_from_settings`);
`stored` is the score already stored for the turn, whoever produced it, so a stored LLM
evaluation can be compared with the heuristic without calling the LLM again. An item a judge
cannot score (a `JudgeError` after its retries, a turn with no stored evaluation) is named in
that judge's failures and left out of every statistic that involves it.

The statistics are `runner.compare_runs` (every pair of judges, the first as reference) on
three slices: all turns, the turns of each language, and the flows (one per session).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations
from typing import Any

from sqlalchemy import or_, select

from api.calibration.defaults import DEFAULT_RESAMPLES, DEFAULT_SEED
from api.calibration.runner import (
    Comparison,
    JudgeName,
    JudgeRun,
    compare_runs,
    judges_from_settings,
    run_judge,
)
from api.settings import Settings
from nodes.judges.judge import FlowCase, Judge, TurnCase
from storage.database import Database
from storage.errors import SessionNotFoundError
from storage.migrate import aupgrade
from storage.models import EvaluationType, PromptEvaluation, PromptMessage, PromptSession, Question

#: Slice of every turn; each language adds `turns:<language>`; flows are `flows`.
TURNS = "turns"
FLOWS = "flows"


class CompareJudge(StrEnum):
    """Judges `turnjudge compare` can put side by side."""

    STORED = "stored"
    HEURISTIC = "heuristic"
    LLM = "llm"


class NothingToCompareError(ValueError):
    """The selection holds no answered turn (no session matched, or none was answered)."""


@dataclass(frozen=True)
class StoredSession:
    """A stored session's answered turns, as the judges see them, and its stored scores."""

    id: uuid.UUID
    position: str
    language: str
    run: str | None
    turns: tuple[TurnCase, ...]
    stored: dict[int | None, dict[str, Any]]
    """Stored `details` by turn; None = the HOLISTIC_FLOW."""

    def flow(self) -> FlowCase:
        """The HOLISTIC_FLOW case node 6a builds from the answered turns."""
        return FlowCase(position=self.position, language=self.language, turns=self.turns)


def item_key(session_id: uuid.UUID | str, turn: int | None) -> str:
    """`<session>/<turn>` for a TURN_EVAL, `<session>/flow` for the HOLISTIC_FLOW."""
    return f"{session_id}/{'flow' if turn is None else turn}"


async def load_sessions(
    db: Database,
    *,
    session_ids: Sequence[uuid.UUID] = (),
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[StoredSession]:
    """The sessions named by id plus those matching `run` and `tags`; all when none is given.

    Raises `SessionNotFoundError` naming the first id that is not stored. Sessions come in
    the order they started; unanswered turns are left out (no judge grades them).
    """
    query = select(PromptSession).order_by(PromptSession.started_at, PromptSession.id)
    filters = []
    if run is not None:
        filters.append(PromptSession.metadata_["run"].astext == run)
    if tags:
        filters.append(PromptSession.metadata_["tags"].contains(dict(tags)))
    wanted = list(dict.fromkeys(session_ids))
    if wanted and filters:
        query = query.where(or_(PromptSession.id.in_(wanted), *filters))
    elif wanted:
        query = query.where(PromptSession.id.in_(wanted))
    elif filters:
        query = query.where(*filters)
    async with db.transaction() as s:
        rows = list(await s.scalars(query))
        found = {row.id for row in rows}
        missing = next((i for i in wanted if i not in found), None)
        if missing is not None:
            raise SessionNotFoundError(missing)
        ids = [row.id for row in rows]
        turns = (
            await s.execute(
                select(PromptMessage, Question.category)
                .outerjoin(Question, Question.id == PromptMessage.question_id)
                .where(PromptMessage.session_id.in_(ids), PromptMessage.answer_text.is_not(None))
                .order_by(PromptMessage.session_id, PromptMessage.turn)
            )
        ).all()
        evaluations = list(
            await s.scalars(select(PromptEvaluation).where(PromptEvaluation.session_id.in_(ids)))
        )
    by_id = {row.id: row for row in rows}
    by_session: dict[uuid.UUID, list[TurnCase]] = {}
    for message, category in turns:
        session = by_id[message.session_id]
        by_session.setdefault(message.session_id, []).append(
            TurnCase(
                position=session.position,
                language=session.language,
                turn=message.turn,
                question=message.question_text,
                answer=message.answer_text or "",
                category=category,
            )
        )
    stored: dict[uuid.UUID, dict[int | None, dict[str, Any]]] = {}
    for evaluation in evaluations:
        turn = (
            None if evaluation.evaluation_type is EvaluationType.HOLISTIC_FLOW else evaluation.turn
        )
        stored.setdefault(evaluation.session_id, {})[turn] = dict(evaluation.details)
    return [
        StoredSession(
            id=row.id,
            position=row.position,
            language=row.language,
            run=row.metadata_.get("run"),
            turns=tuple(by_session.get(row.id, ())),
            stored=stored.get(row.id, {}),
        )
        for row in rows
    ]


def cases_of(sessions: Sequence[StoredSession]) -> dict[str, TurnCase | FlowCase]:
    """Every answered turn and every session's flow (sessions with an answer), keyed."""
    cases: dict[str, TurnCase | FlowCase] = {}
    for session in sessions:
        for turn in session.turns:
            cases[item_key(session.id, turn.turn)] = turn
        if session.turns:
            cases[item_key(session.id, None)] = session.flow()
    return cases


def _summary(values: Sequence[dict[str, Any]]) -> dict[str, str]:
    """`details.judge` of several evaluations: each field's distinct values, comma-joined."""
    fields: dict[str, dict[str, None]] = {}
    for judge in values:
        for key, value in judge.items():
            fields.setdefault(str(key), {})[str(value)] = None
    return {key: ", ".join(seen) for key, seen in sorted(fields.items())}


def stored_run(sessions: Sequence[StoredSession]) -> JudgeRun:
    """The stored scores as a judge run (an item without a stored evaluation is a failure)."""
    scores: dict[str, float] = {}
    failures: dict[str, str] = {}
    judges: list[dict[str, Any]] = []
    for session in sessions:
        if not session.turns:
            continue
        for turn in (*(t.turn for t in session.turns), None):
            key = item_key(session.id, turn)
            details = session.stored.get(turn)
            if details is None:
                kind = EvaluationType.HOLISTIC_FLOW if turn is None else EvaluationType.TURN_EVAL
                failures[key] = f"no stored {kind.value}"
                continue
            scores[key] = float(details["score"])
            judges.append(details.get("judge") or {})
    return JudgeRun(
        name=CompareJudge.STORED, judge=_summary(judges), scores=scores, failures=failures
    )


def slices_of(sessions: Sequence[StoredSession]) -> dict[str, list[str]]:
    """Item keys per slice: all turns, the turns of each language, the flows."""
    turns = [(s.language, item_key(s.id, t.turn)) for s in sessions for t in s.turns]
    slices = {TURNS: [key for _, key in turns]}
    for language in sorted({language for language, _ in turns}):
        slices[f"{TURNS}:{language}"] = [key for lang, key in turns if lang == language]
    slices[FLOWS] = [item_key(s.id, None) for s in sessions if s.turns]
    return slices


@dataclass(frozen=True)
class SessionComparison:
    """Everything `turnjudge compare` reports."""

    sessions: list[StoredSession]
    runs: list[JudgeRun]
    """In the order asked; the first of each pair is the reference."""
    comparisons: list[Comparison]
    seed: int
    resamples: int


async def compare(
    sessions: Sequence[StoredSession],
    names: Sequence[CompareJudge],
    judges: Mapping[str, Judge],
    *,
    concurrency: int = 4,
    progress: bool = False,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> SessionComparison:
    """Score every item with each judge (`stored` reads the stored score), then every pair.

    Raises `NothingToCompareError` when the sessions hold no answered turn, and `ValueError`
    for fewer than two distinct judges.
    """
    wanted = list(dict.fromkeys(names))
    if len(wanted) < 2:
        raise ValueError("compare needs two different judges")
    cases = cases_of(sessions)
    if not cases:
        raise NothingToCompareError("no answered turn in the selected sessions")
    runs = [
        stored_run(sessions)
        if name is CompareJudge.STORED
        else await run_judge(name, judges[name], cases, concurrency=concurrency, progress=progress)
        for name in wanted
    ]
    slices = slices_of(sessions)
    comparisons = [
        compare_runs(first, second, slices, seed=seed, resamples=resamples)
        for first, second in combinations(runs, 2)
    ]
    return SessionComparison(
        sessions=list(sessions), runs=runs, comparisons=comparisons, seed=seed, resamples=resamples
    )


async def compare_stored(
    settings: Settings,
    names: Sequence[CompareJudge],
    *,
    session_ids: Sequence[uuid.UUID] = (),
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
    concurrency: int = 4,
    progress: bool = False,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> SessionComparison:
    """`compare` on the configured database with the judges the settings configure.

    Raises `SessionNotFoundError`, `NothingToCompareError`, and `JudgeConfigurationError`
    for `llm` without an endpoint configured.
    """
    db = await Database.connect(settings)
    try:
        await aupgrade(db.urls)
        sessions = await load_sessions(db, session_ids=session_ids, run=run, tags=tags)
    finally:
        await db.dispose()
    built = [JudgeName(name) for name in names if name is not CompareJudge.STORED]
    async with judges_from_settings(built, settings) as judges:
        return await compare(
            sessions,
            names,
            judges,
            concurrency=concurrency,
            progress=progress,
            seed=seed,
            resamples=resamples,
        )
