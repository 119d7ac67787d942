"""A Python module run in a child process against the test database, offline.

The CLI and the durability tests start real processes: each gets the test database's URL
and the heuristic judge, and no OpenAI settings leak in from the environment, so nothing in
the child can reach a network judge whatever the developer's shell holds.
"""

from __future__ import annotations

import os
import subprocess
import sys

from storage.database import DatabaseUrls

#: Longest a child may run before the test fails (seconds).
TIMEOUT_S = 300


def run_offline(
    database_urls: DatabaseUrls, module: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m module *args` on the test database with the heuristic judge; `env` added."""
    environ = {
        **os.environ,
        "DATABASE_URL": database_urls.sqlalchemy,
        "JUDGE": "heuristic",
        **env,
    }
    environ.pop("OPENAI_API_KEY", None)
    environ.pop("OPENAI_BASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
