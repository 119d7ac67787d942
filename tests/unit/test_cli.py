"""The command line a user meets first: every command and option explains itself."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def _commands() -> dict[str, Any]:
    group: Any = typer.main.get_command(app)  # typer's own click fork: a TyperGroup
    return dict(group.commands)


def test_every_command_argument_and_option_has_help() -> None:
    commands = _commands()
    assert {
        "demo",
        "interview",
        "evaluate",
        "report",
        "export",
        "serve",
        "db",
        "migrate",
        "seed-questions",
        "similar",
    } <= set(commands)
    missing = []
    for name, command in commands.items():
        if not (command.help or "").strip():
            missing.append(name)
        for param in command.params:
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{name} {param.name}")
    assert missing == []


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"turnjudge {version('turnjudge')}"


def test_export_refuses_unknown_format_before_touching_the_database() -> None:
    result = runner.invoke(app, ["export", "--format", "xml"])
    assert result.exit_code == 2
    assert "csv, parquet or jsonl" in result.output


def test_parquet_needs_an_output_file() -> None:
    result = runner.invoke(app, ["export", "--format", "parquet"])
    assert result.exit_code == 2
    assert "--output" in result.output


def test_evaluate_refuses_a_malformed_tag(tmp_path: Path) -> None:
    records = tmp_path / "t.jsonl"
    records.write_text("{}\n")
    result = runner.invoke(app, ["evaluate", str(records), "--run", "r", "--tag", "novalue"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output
