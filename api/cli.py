"""The `turnjudge` command line: a thin facade over the storage services and the graph."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from storage.embedded import start_embedded_server, stop_embedded_server
from storage.services import Storage
from storage.settings import get_settings

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


async def _migrate(args: argparse.Namespace) -> int:
    storage = await Storage.open(get_settings(), migrate=True)
    await storage.close()
    print("database migrated to head")
    return 0


async def _seed(args: argparse.Namespace) -> int:
    from storage.bank import seed_questions

    storage = await Storage.open(get_settings(), migrate=True)
    try:
        inserted = await seed_questions(storage.questions)
        total = await storage.questions.count()
    finally:
        await storage.close()
    print(f"question bank: {inserted} added, {total} in total")
    return 0


async def _similar(args: argparse.Namespace) -> int:
    storage = await Storage.open(get_settings(), migrate=True, seed=True)
    try:
        hits = await storage.questions.similar(args.text, k=args.k, position=args.position)
    finally:
        await storage.close()
    for hit in hits:
        print(f"{hit.distance:.3f}  [{hit.position}/{hit.category}/{hit.language}] {hit.text}")
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from api.demo import run_demo
    from api.runtime import open_runtime

    async with open_runtime(get_settings()) as runtime:
        report = await run_demo(runtime.interviews, runtime.services.storage.embedder)
    return 0 if report.ended_at else 1


async def _evaluate(args: argparse.Namespace) -> int:
    from api.batch import evaluate_file
    from api.runtime import open_runtime

    async with open_runtime(get_settings()) as runtime:
        failed = await evaluate_file(
            runtime.interviews, args.path, output=args.output, concurrency=args.concurrency
        )
    return 1 if failed else 0


def _serve(args: argparse.Namespace) -> int:
    from api.server import serve

    serve(args.host, args.port)
    return 0


async def _db(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.database_url is not None and args.action != "status":
        print("DATABASE_URL is set: no embedded server is managed", file=sys.stderr)
        return 0
    if args.action == "stop":
        stopped = await asyncio.to_thread(stop_embedded_server, settings.data_dir)
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    elif args.action == "start":
        server = await asyncio.to_thread(start_embedded_server, settings.data_dir)
        print(f"embedded PostgreSQL running; psql URL: {server.libpq_url(settings.database_name)}")
    else:
        target = settings.database_url or f"embedded ({settings.data_dir})"
        print(f"database: {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """All sub-commands; each maps to one coroutine."""
    parser = argparse.ArgumentParser(prog="turnjudge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=_migrate)
    sub.add_parser("seed-questions", help="load the packaged question bank (idempotent)"
                   ).set_defaults(handler=_seed)

    similar = sub.add_parser("similar", help="search the bank for similar questions")
    similar.add_argument("text")
    similar.add_argument("-k", type=int, default=5)
    similar.add_argument("--position")
    similar.set_defaults(handler=_similar)

    sub.add_parser("demo", help="run a whole offline interview with a scripted candidate"
                   ).set_defaults(handler=_demo)

    evaluate = sub.add_parser("evaluate", help="evaluate transcripts from a JSON or JSONL file")
    evaluate.add_argument("path", help="JSON list or JSONL of {participant_id, position, "
                          "language, transcript: [{question, answer}]}")
    evaluate.add_argument("-o", "--output", help="write one JSON report per line here")
    evaluate.add_argument("-c", "--concurrency", type=int, default=4,
                          help="sessions evaluated at once (default 4)")
    evaluate.set_defaults(handler=_evaluate)

    serve = sub.add_parser("serve", help="run the HTTP API (OpenAPI at /docs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(sync_handler=_serve)

    db = sub.add_parser("db", help="manage the embedded PostgreSQL server")
    db.add_argument("action", choices=["start", "stop", "status"])
    db.set_defaults(handler=_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `turnjudge` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if hasattr(args, "sync_handler"):
        code: int = args.sync_handler(args)
        return code
    handler: Handler = args.handler
    return asyncio.run(handler(args))


if __name__ == "__main__":
    sys.exit(main())
