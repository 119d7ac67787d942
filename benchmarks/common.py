"""Helpers shared by the benchmarks: throwaway databases, machine info, results files.

Results format (one JSON file per benchmark in `benchmarks/results/<name>.json`)::

    {
      "name": "storage",                  # file stem
      "title": "Storage",                 # heading in RESULTS.md
      "machine": {...},                   # machine_info(): cpus, python, postgres, date...
      "tables": [{"title": str, "headers": [str], "rows": [[...]]}],
      "notes": [str],                     # methodology and conclusions, one bullet each
      "data": {...}                       # raw numbers, free-form
    }

`render_results_md()` turns every such file into `benchmarks/RESULTS.md`; a file without
`tables` is rendered as its JSON.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from api.settings import Settings, get_settings
from storage.database import Database
from storage.scratch import scratch_database

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"


def throwaway_database(
    settings: Settings | None = None, prefix: str = "turnjudge_bench"
) -> AbstractAsyncContextManager[Database]:
    """A new, migrated database on the embedded server, dropped on exit (as in the tests)."""
    return scratch_database(settings or get_settings(), prefix)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


async def machine_info(db: Database | None = None) -> dict[str, Any]:
    """What the numbers were measured on.

    Args:
        db: When given, the PostgreSQL and pgvector versions are read from it.

    Returns:
        CPU count, memory, load average (the machine may be shared), Python, platform,
        PostgreSQL and pgvector versions, git commit and the UTC date.
    """
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "git_commit": _git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if db is not None:
        async with db.engine.connect() as conn:
            info["postgres"] = (await conn.execute(text("SHOW server_version"))).scalar_one()
            info["pgvector"] = (
                await conn.execute(
                    text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                )
            ).scalar_one_or_none()
            info["postgres_shared_buffers"] = (
                await conn.execute(text("SHOW shared_buffers"))
            ).scalar_one()
    return info


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median."""
    return statistics.median(values)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats are shown with sensible precision."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value >= 1000:
                return f"{value:,.0f}"
            if value >= 10:
                return f"{value:.1f}"
            return f"{value:.3f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}" if abs(value) >= 1000 else str(value)
        return str(value)

    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a titled markdown table to stdout."""
    print(f"\n### {title}\n\n{markdown_table(headers, rows)}\n", flush=True)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write `results/<name>.json` (the payload gets `name` added) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"name": name, **payload}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _machine_line(machine: dict[str, Any]) -> str:
    parts = [
        f"{machine.get('cpu_count')} CPUs",
        f"{machine.get('memory_gb')} GB RAM",
        f"load {machine.get('load_average_1m')}",
        f"Python {machine.get('python')}",
    ]
    if machine.get("postgres"):
        parts.append(f"PostgreSQL {machine['postgres']}")
    if machine.get("pgvector"):
        parts.append(f"pgvector {machine['pgvector']}")
    if machine.get("git_commit"):
        parts.append(f"commit {machine['git_commit']}")
    parts.append(str(machine.get("date")))
    return "Measured on " + ", ".join(parts) + "."


def render_results_md(results_dir: Path = RESULTS_DIR, output: Path = RESULTS_MD) -> Path:
    """Rewrite RESULTS.md from every JSON file in `results_dir`.

    Args:
        results_dir: Where the benchmarks wrote their JSON.
        output: The markdown file to (over)write.

    Returns:
        The path written.
    """
    sections = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks` from `benchmarks/results/*.json`; do not edit.",
    ]
    for path in sorted(results_dir.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        sections += ["", f"## {document.get('title', path.stem)}", ""]
        machine = document.get("machine")
        if isinstance(machine, dict):
            sections += [_machine_line(machine), ""]
        tables = document.get("tables")
        if not tables:
            sections += ["```json", json.dumps(document, indent=2, ensure_ascii=False), "```"]
            continue
        for table in tables:
            sections += [
                f"### {table['title']}",
                "",
                markdown_table(table["headers"], table["rows"]),
                "",
            ]
        notes = document.get("notes") or []
        if notes:
            sections += ["Notes:", ""] + [f"- {note}" for note in notes]
    output.write_text("\n".join(sections).rstrip() + "\n", encoding="utf-8")
    return output
