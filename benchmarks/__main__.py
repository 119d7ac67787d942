"""Run every benchmark, then rewrite benchmarks/RESULTS.md from all JSON results.

Usage::

    python -m benchmarks                 # every bench_*.py module exposing main()
    python -m benchmarks storage graph   # only bench_storage.py and bench_graph.py
    python -m benchmarks --list          # what would run
    python -m benchmarks --render-only   # only rewrite RESULTS.md

Each module's `main()` is called without arguments (it may return a coroutine, which is
run); a failing benchmark is reported and the others still run. The exit status is 1 when
any benchmark failed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence

import benchmarks
from benchmarks.common import render_results_md


def discover() -> list[str]:
    """Names of the `bench_*` modules of this package, sorted."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if info.name.startswith("bench_") and not info.ispkg
    )


def _selected(names: Sequence[str]) -> list[str]:
    available = discover()
    if not names:
        return available
    chosen = []
    for name in names:
        module = name if name.startswith("bench_") else f"bench_{name}"
        if module not in available:
            raise SystemExit(f"unknown benchmark {name!r}; available: {', '.join(available)}")
        chosen.append(module)
    return chosen


def run_module(name: str) -> bool:
    """Import `benchmarks.<name>` and run its `main()`; return False if it failed.

    Args:
        name: Module name inside the package, e.g. `bench_storage`.

    Returns:
        True on success or when the module has no `main()` (it is skipped).
    """
    module = importlib.import_module(f"benchmarks.{name}")
    entry = getattr(module, "main", None)
    if not callable(entry):
        print(f"== {name}: no main(), skipped", flush=True)
        return True
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        result = entry()
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except Exception:  # one failing benchmark must not hide the others' results
        traceback.print_exc()
        print(f"== {name}: FAILED after {time.perf_counter() - started:.0f} s", flush=True)
        return False
    print(f"== {name}: done in {time.perf_counter() - started:.0f} s", flush=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks and rewrite RESULTS.md.

    Args:
        argv: Command-line arguments (defaults to `sys.argv[1:]`).

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--render-only", action="store_true", help="only rewrite RESULTS.md from the JSON"
    )
    args = parser.parse_args(argv)
    names = _selected(args.names)
    if args.list:
        print("\n".join(names))
        return 0
    failures = [] if args.render_only else [name for name in names if not run_module(name)]
    path = render_results_md()
    print(f"wrote {path}", flush=True)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
