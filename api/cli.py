"""The `turnjudge` command line (typer): a thin facade over the storage services and the graph.

Every command opens what it needs from settings (the embedded PostgreSQL unless DATABASE_URL
is set), does one job and exits with 0 on success. `turnjudge --help` lists them;
`turnjudge COMMAND --help` explains each option.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from api.calibration.defaults import DEFAULT_PAIR_GAP, DEFAULT_RESAMPLES, DEFAULT_SEED
from api.settings import Settings, get_settings
from storage.embedded import embedded_status, start_embedded_server, stop_embedded_server
from storage.services import Storage
from storage.settings import DEFAULT_TENANT

app = typer.Typer(
    name="turnjudge",
    help="Conduct and evaluate interviews with a LangGraph state machine, stored in PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PositionOption = Annotated[
    str, typer.Option(help="Position whose rubric and question bank to use, e.g. backend.")
]
LanguageOption = Annotated[str, typer.Option(help="Interview language: en or ko.")]
# Options of the judge reports (`calibrate`, `compare`).
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", help="Write the Markdown report here (default: print it)."),
]
JsonReportOption = Annotated[
    Path | None, typer.Option("--json", help="Also write the report as JSON here.")
]
SeedOption = Annotated[
    int, typer.Option(help="Seed of the bootstrap resampling (same seed, same report).")
]
ResamplesOption = Annotated[
    int, typer.Option(min=100, max=100_000, help="Bootstrap resamples per statistic.")
]

T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a typed domain error becomes one line and exit code 1."""
    from api.errors import STATUS_BY_ERROR

    try:
        return asyncio.run(coroutine)
    except tuple(STATUS_BY_ERROR) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"turnjudge {version('turnjudge')}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at INFO level (default: warnings only).")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options shared by every command."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)


@app.command()
def migrate() -> None:
    """Apply the database migrations (Alembic) up to head."""

    async def run() -> None:
        storage = await Storage.open(get_settings(), migrate=True)
        await storage.close()

    _run(run())
    typer.echo("database migrated to head")


@app.command("seed-questions")
def seed_questions() -> None:
    """Load the packaged question bank (idempotent: existing questions are kept)."""
    from storage.bank import seed_questions as seed

    async def run() -> tuple[int, int]:
        storage = await Storage.open(get_settings(), migrate=True)
        try:
            inserted = await seed(storage.questions)
            return inserted, await storage.questions.count()
        finally:
            await storage.close()

    inserted, total = _run(run())
    typer.echo(f"question bank: {inserted} added, {total} in total")


@app.command()
def similar(
    text: Annotated[str, typer.Argument(help="Text to find similar bank questions for.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=50, help="How many questions.")] = 5,
    position: Annotated[str | None, typer.Option(help="Only questions of this position.")] = None,
    language: Annotated[str | None, typer.Option(help="Only questions in this language.")] = None,
) -> None:
    """Search the question bank by meaning (pgvector cosine distance)."""

    async def run() -> None:
        storage = await Storage.open(get_settings(), migrate=True, seed=True)
        try:
            hits = await storage.questions.similar(text, k=k, position=position, language=language)
        finally:
            await storage.close()
        for hit in hits:
            typer.echo(
                f"{hit.distance:.3f}  [{hit.position}/{hit.category}/{hit.language}] {hit.text}"
            )

    _run(run())


@app.command()
def demo(
    position: Annotated[
        str,
        typer.Option(
            help="Position of the interview; the Korean candidate knows every "
            "position, the English one backend."
        ),
    ] = "backend",
    language: Annotated[
        str, typer.Option(help="Language of the scripted candidate and the analyses: en or ko.")
    ] = "en",
) -> None:
    """Run a whole offline interview with a scripted sample candidate and print the report."""
    from api.demo import run_demo
    from api.runtime import open_runtime

    async def run() -> bool:
        async with open_runtime(get_settings()) as runtime:
            report = await run_demo(
                runtime.interviews,
                runtime.services.storage.embedder,
                position=position,
                language=language,
            )
        return report.ended_at is not None

    if not _run(run()):
        raise typer.Exit(1)


@app.command()
def interview(
    position: PositionOption = "backend",
    language: LanguageOption = "en",
    max_turns: Annotated[
        int, typer.Option(min=1, max=30, help="Questions to ask before evaluating.")
    ] = 5,
    participant: Annotated[
        str, typer.Option(help="Participant id stored with the session.")
    ] = "cli-candidate",
    session: Annotated[
        uuid.UUID | None,
        typer.Option(help="Resume this session instead of starting a new one."),
    ] = None,
) -> None:
    """Take an interview in the terminal: answer each question, then read the report."""
    from api.interactive import run_interview, start_or_resume
    from api.report_text import print_report
    from api.runtime import open_runtime

    async def run() -> None:
        async with open_runtime(get_settings()) as runtime:
            step = await start_or_resume(
                runtime.interviews,
                session_id=session,
                participant_id=participant,
                position=position,
                language=language,
                max_turns=max_turns,
            )
            print_report(await run_interview(runtime.interviews, step))

    _run(run())


@app.command()
def evaluate(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="JSON array or JSONL of {participant_id, position, language, "
            "transcript: [{question, answer}]} records.",
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write one JSON report per line here.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Sessions evaluated at once.")
    ] = 4,
    run_name: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="Store the sessions under this run name; evaluating the same file again "
            "under the same run returns the stored reports instead of adding sessions.",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="A label KEY=VALUE stored with every session (repeatable)."),
    ] = None,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Store and queue the transcripts for workers (`turnjudge worker`) instead of "
            "evaluating here; prints the session ids.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="With --queue: show a progress bar until every queued one is done."
        ),
    ] = False,
) -> None:
    """Evaluate whole transcripts (submission mode) with a progress bar, or queue them."""
    from api.batch import evaluate_file, queue_file, wait_queued
    from api.callbacks import callback_secret
    from api.runtime import open_runtime

    if wait and not queue:
        raise typer.BadParameter(
            "--wait follows queued evaluations: add --queue", param_hint="--wait"
        )
    if output is not None and queue:
        raise typer.BadParameter(
            "reports are written by workers later: use `turnjudge report`", param_hint="--output"
        )
    tags = _parse_tags(tag or [])

    async def run() -> int:
        settings = get_settings()
        async with open_runtime(settings) as runtime:
            if not queue:
                return await evaluate_file(
                    runtime.interviews,
                    path,
                    output=str(output) if output else None,
                    concurrency=concurrency,
                    run=run_name,
                    tags=tags,
                )
            queued, failures = await queue_file(
                runtime.interviews,
                path,
                callbacks_signed=callback_secret(settings, DEFAULT_TENANT) is not None,
                run=run_name,
                tags=tags,
            )
            for session_id in queued:
                typer.echo(str(session_id))
            for failure in failures:
                typer.echo(failure, err=True)
            typer.echo(f"{len(queued)} queued, {len(failures)} refused", err=True)
            if wait and queued:
                counts = await wait_queued(runtime.services.storage.jobs, queued)
                typer.echo(
                    f"{counts.get('completed', 0)} completed, {counts.get('failed', 0)} failed",
                    err=True,
                )
                return len(failures) + counts.get("failed", 0)
            return len(failures)

    if _run(run()):
        raise typer.Exit(1)


def _parse_tags(values: list[str]) -> dict[str, str]:
    """`KEY=VALUE` options as a dict; a malformed one is a usage error naming it."""
    tags: dict[str, str] = {}
    for value in values:
        key, sep, label = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--tag")
        tags[key.strip()] = label.strip()
    return tags


@app.command()
def worker(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            max=256,
            help="Sessions evaluated at once by this worker (LLM calls are further bounded "
            "by LLM_MAX_CONCURRENCY).",
        ),
    ] = 4,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue", "-q", help="Queue to take jobs from (repeatable; default QUEUE_NAME)."
        ),
    ] = None,
) -> None:
    """Run queued evaluations until SIGTERM (then finish the started ones and exit)."""
    from api.worker import run_worker

    _run(run_worker(get_settings(), concurrency=concurrency, queues=queues or None))


@app.command()
def report(
    session_id: Annotated[uuid.UUID, typer.Argument(help="The session to report on.")],
    html: Annotated[
        Path | None,
        typer.Option(help="Write the self-contained HTML report to this file instead."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for machines).")
    ] = False,
) -> None:
    """Print a stored session's report: turns, scores, criteria, flags, analyses."""
    import dataclasses
    import json

    from api.report_page import render_report_html
    from api.report_text import print_report
    from api.runtime import open_runtime

    async def run() -> None:
        async with open_runtime(get_settings()) as runtime:
            stored = await runtime.interviews.report(session_id)
        if html is not None:
            html.write_text(render_report_html(stored), encoding="utf-8")
            typer.echo(f"report written to {html}")
        elif as_json:
            typer.echo(json.dumps(dataclasses.asdict(stored), ensure_ascii=False, default=str))
        else:
            print_report(stored)

    _run(run())


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, parquet or jsonl.")] = "csv",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (stdout if unset; parquet needs one)."),
    ] = None,
    run_name: Annotated[
        str | None, typer.Option("--run", help="Only sessions stored under this run name.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Only evaluations stored at or after this time (ISO 8601)."),
    ] = None,
) -> None:
    """Export stored evaluations, one row per evaluation, for pandas or a spreadsheet."""
    from api.export import ExportFormat, write_export
    from storage.exports import evaluation_records

    try:
        chosen = ExportFormat(fmt)
    except ValueError:
        raise typer.BadParameter("choose csv, parquet or jsonl", param_hint="--format") from None
    if chosen is ExportFormat.PARQUET and output is None:
        raise typer.BadParameter("parquet is binary: give --output FILE", param_hint="--output")

    async def run() -> int:
        storage = await Storage.open(get_settings(), migrate=True)
        try:
            records = await evaluation_records(storage.db, run=run_name, since=since)
        finally:
            await storage.close()
        return write_export(records, chosen, output)

    rows = _run(run())
    if output is not None:
        typer.echo(f"{rows} evaluations written to {output}", err=True)


@app.command()
def calibrate(
    labels: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="JSONL of human labels, one {question, answer, position, language, score} "
            "object per line, optionally with band, rater, id and note "
            "(see notebooks/data/LABELLING.md).",
        ),
    ],
    judge: Annotated[
        list[str] | None,
        typer.Option(
            "--judge",
            "-j",
            help="Judge to calibrate: heuristic or llm (llm needs OPENAI_API_KEY or "
            "OPENAI_BASE_URL). Repeat it to also compare the judges with each other.",
        ),
    ] = None,
    report: ReportOption = None,
    json_out: JsonReportOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=64, help="Answers scored at once.")
    ] = 4,
    seed: SeedOption = DEFAULT_SEED,
    resamples: ResamplesOption = DEFAULT_RESAMPLES,
    pair_gap: Annotated[
        float,
        typer.Option(
            min=0,
            max=100,
            help="Two answers to one question form a better/worse pair when their human "
            "scores differ by more than this many points.",
        ),
    ] = DEFAULT_PAIR_GAP,
) -> None:
    """Compare judges with human labels: correlation, kappa, MAE, bias, pair accuracy."""
    from api.calibration.labels import LabelError, load_labels
    from api.calibration.report import to_json, to_markdown
    from api.calibration.runner import JudgeName, calibrate_with_settings

    try:
        names = [JudgeName(name) for name in judge or ["heuristic"]]
    except ValueError:
        raise typer.BadParameter("choose heuristic or llm", param_hint="--judge") from None
    try:
        items = load_labels(labels)
    except LabelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    result = _run(
        calibrate_with_settings(
            str(labels),
            items,
            names,
            get_settings(),
            concurrency=concurrency,
            progress=True,
            seed=seed,
            resamples=resamples,
            pair_gap=pair_gap,
        )
    )
    _write_reports(to_markdown(result), to_json(result), report, json_out)


@app.command()
def compare(
    judge: Annotated[
        list[str],
        typer.Option(
            "--judge",
            "-j",
            help="A judge: stored (the scores already stored), heuristic or llm (llm needs "
            "OPENAI_API_KEY or OPENAI_BASE_URL). At least two; the first is the reference.",
        ),
    ],
    session: Annotated[
        list[uuid.UUID] | None,
        typer.Option("--session", "-s", help="A stored session to compare on (repeatable)."),
    ] = None,
    run_name: Annotated[
        str | None, typer.Option("--run", help="Also every session stored under this run.")
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Also every session with this KEY=VALUE tag (repeatable)."),
    ] = None,
    report: ReportOption = None,
    json_out: JsonReportOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=64, help="Items scored at once.")
    ] = 4,
    seed: SeedOption = DEFAULT_SEED,
    resamples: ResamplesOption = DEFAULT_RESAMPLES,
) -> None:
    """Compare judges on stored sessions, turn by turn, without storing anything.

    Sessions: those given with --session plus those matching --run / --tag; every stored
    session when none of these is given.
    """
    from api.calibration.compare import CompareJudge, NothingToCompareError, compare_stored
    from api.calibration.compare_report import to_json, to_markdown

    try:
        names = list(dict.fromkeys(CompareJudge(name) for name in judge))
    except ValueError:
        raise typer.BadParameter("choose stored, heuristic or llm", param_hint="--judge") from None
    if len(names) < 2:
        raise typer.BadParameter("give two different judges", param_hint="--judge")
    try:
        result = _run(
            compare_stored(
                get_settings(),
                names,
                session_ids=session or [],
                run=run_name,
                tags=_parse_tags(tag or []),
                concurrency=concurrency,
                progress=True,
                seed=seed,
                resamples=resamples,
            )
        )
    except NothingToCompareError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _write_reports(to_markdown(result), to_json(result), report, json_out)


def _write_reports(
    text: str, data: dict[str, Any], report: Path | None, json_out: Path | None
) -> None:
    """A judge report: the JSON to `json_out` if given, the Markdown to `report` or stdout."""
    import json

    if json_out is not None:
        json_out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", "utf-8")
        typer.echo(f"JSON report written to {json_out}", err=True)
    if report is not None:
        report.write_text(text, encoding="utf-8")
        typer.echo(f"report written to {report}", err=True)
    else:
        typer.echo(text, nl=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """Run the HTTP API (uvicorn; OpenAPI at /docs, served offline)."""
    from api.server import serve as serve_api

    serve_api(host, port)


#: Exit status of `turnjudge db status` when the server is not running (as LSB's `status`).
EXIT_NOT_RUNNING = 3


async def _ping(settings: Settings) -> None:
    """Open one connection to the configured database and run `SELECT 1`."""
    from sqlalchemy import NullPool, text

    from storage.database import DatabaseUrls, create_engine

    assert settings.database_url is not None
    urls = DatabaseUrls.from_url(settings.database_url, settings.db_schema)
    engine = create_engine(settings, urls, poolclass=NullPool, connect_args={"timeout": 5})
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def _db_status(settings: Settings) -> int:
    """Print whether the database server runs and where; 0 running, 3 stopped."""
    if settings.database_url is not None:
        from sqlalchemy.engine import make_url

        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        try:
            asyncio.run(_ping(settings))
        except Exception as exc:  # any failure to connect means "not usable"
            typer.echo(
                f"database: {shown} (DATABASE_URL)\nstatus: not reachable ({type(exc).__name__})"
            )
            return EXIT_NOT_RUNNING
        typer.echo(f"database: {shown} (DATABASE_URL)\nstatus: running")
        return 0
    status = embedded_status(settings.data_dir)
    if status is None:
        typer.echo(f"embedded PostgreSQL: stopped\ndata dir: {settings.data_dir.resolve()}")
        return EXIT_NOT_RUNNING
    typer.echo(
        f"embedded PostgreSQL: running (pid {status.pid})\ndata dir: {status.data_dir}\n"
        f"socket dir: {status.socket_dir}\ndatabase: {settings.database_name}"
    )
    return 0


@app.command()
def db(
    action: Annotated[str, typer.Argument(help="start, stop or status.")],
) -> None:
    """Manage the embedded PostgreSQL server; `status` exits 0 running, 3 stopped."""
    settings = get_settings()
    if action not in {"start", "stop", "status"}:
        raise typer.BadParameter("choose start, stop or status", param_hint="ACTION")
    if action == "status":
        raise typer.Exit(_db_status(settings))
    if settings.database_url is not None:
        typer.echo("DATABASE_URL is set: no embedded server is managed", err=True)
        return
    if action == "stop":
        stopped = stop_embedded_server(settings.data_dir)
        typer.echo(
            "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running"
        )
    else:
        server = start_embedded_server(settings.data_dir)
        typer.echo(
            f"embedded PostgreSQL running; psql URL: {server.libpq_url(settings.database_name)}"
        )


def main() -> None:
    """Entry point of the `turnjudge` command."""
    app()


if __name__ == "__main__":
    main()
