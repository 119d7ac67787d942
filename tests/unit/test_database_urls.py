"""DatabaseUrls.from_url: every accepted DATABASE_URL form, rendered for asyncpg and libpq.

The libpq rendering is checked with libpq's own parser (psycopg's `conninfo_to_dict`), the
asyncpg one with SQLAlchemy's `make_url` (what `create_async_engine` reads) and, for the
parameters it carries in a DSN, with asyncpg's own DSN parser.
"""

from __future__ import annotations

from typing import Any

import pytest
from asyncpg import connect_utils
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from storage.database import DatabaseUrls, asyncpg_connect_args
from storage.urls import DatabaseUrlError

AWKWARD_PASSWORD = "p@ss:w/rd?#% +&=é"
ENCODED_PASSWORD = "p%40ss%3Aw%2Frd%3F%23%25%20%2B%26%3D%C3%A9"


def libpq(urls: DatabaseUrls) -> dict[str, Any]:
    return conninfo_to_dict(urls.libpq)


def asyncpg_query(urls: DatabaseUrls) -> dict[str, Any]:
    return dict(make_url(urls.sqlalchemy).query)


def asyncpg_dsn_params(urls: DatabaseUrls) -> dict[str, Any]:
    """What asyncpg itself makes of the parameters it receives in its `dsn` keyword."""
    dsn = asyncpg_query(urls).get("dsn")
    assert isinstance(dsn, str)
    addrs, params = connect_utils._parse_connect_dsn_and_args(
        dsn=dsn,
        host="h",
        port=5432,
        user="u",
        password=None,
        passfile=None,
        database="d",
        ssl=None,
        direct_tls=None,
        server_settings=None,
        target_session_attrs=None,
        krbsrvname=None,
        gsslib=None,
        service=None,
        servicefile=None,
    )
    return {"server_settings": params.server_settings, "ssl": params.ssl}


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg", "POSTGRES"]
)
def test_every_scheme_is_rendered_for_both_drivers(scheme: str) -> None:
    urls = DatabaseUrls.from_url(f"{scheme}://alice:pw@db.example.com:6543/app")
    assert urls.sqlalchemy.startswith("postgresql+asyncpg://")
    assert urls.libpq.startswith("postgresql://")
    sa = make_url(urls.sqlalchemy)
    assert (sa.username, sa.password, sa.host, sa.port, sa.database) == (
        "alice",
        "pw",
        "db.example.com",
        6543,
        "app",
    )
    assert libpq(urls) == {
        "user": "alice",
        "password": "pw",
        "host": "db.example.com",
        "port": "6543",
        "dbname": "app",
    }
    assert urls.schema is None


def test_sslmode_becomes_asyncpg_ssl_and_stays_sslmode_for_libpq() -> None:
    urls = DatabaseUrls.from_url("postgresql+psycopg://u:pw@h/db?sslmode=require")
    assert asyncpg_query(urls) == {"ssl": "require"}
    assert libpq(urls)["sslmode"] == "require"
    assert "ssl" not in libpq(urls)


@pytest.mark.parametrize(
    ("ssl", "sslmode"),
    [("require", "require"), ("verify-full", "verify-full"), ("true", "require")],
)
def test_asyncpg_ssl_becomes_libpq_sslmode(ssl: str, sslmode: str) -> None:
    urls = DatabaseUrls.from_url(f"postgresql+asyncpg://u@h/db?ssl={ssl}")
    assert libpq(urls)["sslmode"] == sslmode


def test_unix_socket_directory_reaches_both_drivers() -> None:
    urls = DatabaseUrls.from_url("postgresql://postgres@/tj?host=/var/run/postgresql")
    sa = make_url(urls.sqlalchemy)
    assert sa.host is None and sa.query["host"] == "/var/run/postgresql"
    assert sa.username == "postgres" and sa.database == "tj"
    assert libpq(urls)["host"] == "/var/run/postgresql"
    # ... and back from the asyncpg form (what the project writes for the embedded server).
    again = DatabaseUrls.from_url(urls.sqlalchemy)
    assert libpq(again) == libpq(urls)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://bob:{ENCODED_PASSWORD}@h/db",
        f"postgresql+psycopg://bob:{ENCODED_PASSWORD}@h/db",
        f"postgresql+asyncpg://bob:{ENCODED_PASSWORD}@h/db",
    ],
)
def test_passwords_with_special_characters_survive(url: str) -> None:
    urls = DatabaseUrls.from_url(url)
    assert make_url(urls.sqlalchemy).password == AWKWARD_PASSWORD
    assert libpq(urls)["password"] == AWKWARD_PASSWORD
    # The renderings are themselves accepted, and still mean the same password.
    for rendered in (urls.sqlalchemy, urls.libpq):
        assert libpq(DatabaseUrls.from_url(rendered))["password"] == AWKWARD_PASSWORD


def test_a_plus_in_a_libpq_query_value_is_a_plus() -> None:
    urls = DatabaseUrls.from_url("postgresql://u@h/db?application_name=a+b%20c")
    assert libpq(urls)["application_name"] == "a+b c"
    assert asyncpg_dsn_params(urls)["server_settings"] == {"application_name": "a+b c"}


def test_dsn_only_parameters_travel_in_asyncpgs_dsn() -> None:
    urls = DatabaseUrls.from_url(
        "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem"
        "&application_name=grader&options=-c%20statement_timeout%3D5000"
    )
    query = asyncpg_query(urls)
    assert query["ssl"] == "verify-full"
    assert set(query) == {"ssl", "dsn"}  # nothing asyncpg.connect would refuse as a keyword
    seen = asyncpg_dsn_params(urls)
    assert seen["server_settings"] == {
        "application_name": "grader",
        "options": "-c statement_timeout=5000",
    }
    assert libpq(urls)["sslrootcert"] == "/etc/ca.pem"
    assert libpq(urls)["options"] == "-c statement_timeout=5000"


def test_connect_timeout_becomes_a_numeric_asyncpg_timeout() -> None:
    urls = DatabaseUrls.from_url("postgresql://u@h/db?connect_timeout=7")
    assert asyncpg_query(urls) == {"timeout": "7"}
    assert asyncpg_connect_args(urls.sqlalchemy) == {"timeout": 7.0}
    assert libpq(urls)["connect_timeout"] == "7"


def test_asyncpg_only_keywords_stay_out_of_the_libpq_url() -> None:
    urls = DatabaseUrls.from_url(
        "postgresql+asyncpg://u@h/db?prepared_statement_cache_size=0&command_timeout=30"
    )
    assert asyncpg_query(urls) == {"prepared_statement_cache_size": "0", "command_timeout": "30"}
    assert asyncpg_connect_args(urls.sqlalchemy) == {"command_timeout": 30.0}
    assert set(libpq(urls)) == {"user", "host", "dbname"}


def test_libpq_only_transport_settings_stay_out_of_the_asyncpg_url() -> None:
    urls = DatabaseUrls.from_url(
        "postgres://u:pw@ep-1.example.tech/neondb?sslmode=require&channel_binding=require"
    )
    assert asyncpg_query(urls) == {"ssl": "require"}
    assert libpq(urls)["channel_binding"] == "require"


def test_several_hosts_use_sqlalchemys_multi_host_form() -> None:
    urls = DatabaseUrls.from_url("postgresql://u@h1:5432,h2:5433/db?target_session_attrs=any")
    query = asyncpg_query(urls)
    assert query["host"] == ("h1:5432", "h2:5433")
    assert query["target_session_attrs"] == "any"
    assert (libpq(urls)["host"], libpq(urls)["port"]) == ("h1,h2", "5432,5433")


def test_ipv6_host() -> None:
    urls = DatabaseUrls.from_url("postgresql+psycopg://u@[::1]:5433/db")
    assert make_url(urls.sqlalchemy).host == "::1"
    assert libpq(urls)["host"] == "::1"
    assert libpq(DatabaseUrls.from_url(urls.sqlalchemy))["host"] == "::1"


def test_schema_rides_in_both_urls_as_search_path() -> None:
    urls = DatabaseUrls.from_url(
        "postgresql://u@h/db?options=-c%20statement_timeout%3D5000", schema="ai_vibe_coding_test"
    )
    assert urls.schema == "ai_vibe_coding_test"
    expected = '-c statement_timeout=5000 -csearch_path="ai_vibe_coding_test",public'
    assert libpq(urls)["options"] == expected
    assert asyncpg_dsn_params(urls)["server_settings"] == {"options": expected}


@pytest.mark.parametrize("form", ["sqlalchemy", "libpq"])
def test_renderings_are_fixed_points(form: str) -> None:
    first = DatabaseUrls.from_url(
        f"postgresql://u:{ENCODED_PASSWORD}@/db?host=/tmp/sock&sslmode=require"
        "&application_name=x&connect_timeout=3",
        schema="MySchema",
    )
    again = DatabaseUrls.from_url(getattr(first, form), schema="MySchema")
    assert libpq(again) == libpq(first)  # the search_path is not appended twice
    assert make_url(again.sqlalchemy) == make_url(first.sqlalchemy)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "sqlite:///x.db",
        "postgresql+psycopg2://u@h/db",
        "garbage",
        "",
        "postgresql://u@h/db?unknown_param=1",
        "postgresql://u@h:99999/db",
        "postgresql://u@h/db#frag",
        "postgresql://u@h/db?connect_timeout=soon",
        "postgresql+asyncpg://u@h/db?command_timeout=x",
    ],
)
def test_anything_else_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(DatabaseUrlError, match="DATABASE_URL"):
        DatabaseUrls.from_url(url)


@pytest.mark.parametrize("schema", ["bad name", "pg_temp", '"quoted"', "1st"])
def test_bad_schema_is_refused_naming_the_setting(schema: str) -> None:
    with pytest.raises(DatabaseUrlError, match="DB_SCHEMA"):
        DatabaseUrls.from_url("postgresql://u@h/db", schema=schema)
