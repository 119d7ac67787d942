"""`turnjudge db status` says whether the server runs (exit 0) or not (exit 3), and where."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import Settings
from storage.embedded import EmbeddedServer

pytestmark = pytest.mark.integration


def db_status(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    environment.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "db", "status"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_running_server_exits_0_and_says_where(
    settings: Settings, embedded_server: EmbeddedServer
) -> None:
    completed = db_status(DATA_DIR=str(settings.data_dir))
    assert completed.returncode == 0, completed.stderr
    assert "running" in completed.stdout
    assert str(embedded_server.data_dir) in completed.stdout
    assert f"socket dir: {embedded_server.socket_dir}" in completed.stdout


def test_stopped_server_exits_3(tmp_path: Path) -> None:
    completed = db_status(DATA_DIR=str(tmp_path / "pgdata"))
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert "stopped" in completed.stdout
    assert not (tmp_path / "pgdata").exists()  # asking never starts (or creates) a server
