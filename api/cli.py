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

    db = sub.add_parser("db", help="manage the embedded PostgreSQL server")
    db.add_argument("action", choices=["start", "stop", "status"])
    db.set_defaults(handler=_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `turnjudge` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    handler: Handler = args.handler
    return asyncio.run(handler(args))


if __name__ == "__main__":
    sys.exit(main())
