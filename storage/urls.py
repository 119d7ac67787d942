"""DATABASE_URL in the forms teams bring, rendered once in the form each driver needs.

turnjudge reaches PostgreSQL through two drivers: asyncpg (SQLAlchemy: the ORM and the
services) and libpq through psycopg (the LangGraph checkpointer, migrations run from code, the
job queue). Hosting providers hand out `postgresql://` or `postgres://`, seed 001 writes
`postgresql+psycopg://`, SQLAlchemy users write `postgresql+asyncpg://`. Every form is read
with libpq's own parser (`PQconninfoParse` through psycopg), so hosts, ports, unix sockets
(`host=/dir`), percent-encoding and parameter names mean exactly what they mean to psql; then
it is rendered twice:

- libpq: `postgresql://...` with libpq's parameter names (`sslmode`, `sslrootcert`, ...);
- asyncpg: `postgresql+asyncpg://...` whose query holds only keywords `asyncpg.connect`
  accepts: `sslmode` becomes `ssl`, `connect_timeout` becomes `timeout`, and the libpq
  parameters asyncpg only understands inside a DSN (`sslrootcert`, `application_name`,
  `options`, ...) travel in its `dsn` keyword, which asyncpg parses like libpq.

Hand-rendered rather than `URL.render_as_string`: SQLAlchemy writes a space in a password raw
and a space in a query value as `+`, which libpq rejects or reads as a literal plus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ACCEPTED_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg")
ASYNCPG_SCHEME = "postgresql+asyncpg"

#: libpq parameter -> the `asyncpg.connect` keyword with the same meaning.
LIBPQ_TO_ASYNCPG = {"sslmode": "ssl", "connect_timeout": "timeout"}
ASYNCPG_TO_LIBPQ = {value: key for key, value in LIBPQ_TO_ASYNCPG.items()}
#: libpq parameters that are also `asyncpg.connect` keywords, unchanged.
SHARED_KEYWORDS = frozenset(
    {"passfile", "target_session_attrs", "krbsrvname", "gsslib", "service", "servicefile"}
)
#: libpq parameters asyncpg honours only inside a DSN (its parser follows libpq's).
ASYNCPG_DSN_ONLY = frozenset(
    {
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "sslpassword",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "application_name",
        "options",
    }
)
#: Keywords of asyncpg / SQLAlchemy's asyncpg dialect that libpq does not know; kept in the
#: asyncpg form of a `postgresql+asyncpg://` URL, left out of its libpq form.
ASYNCPG_ONLY = frozenset(
    {
        "prepared_statement_cache_size",
        "statement_cache_size",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
        "command_timeout",
        "direct_tls",
    }
)
#: asyncpg keywords that arrive as text from a URL's query but must be numbers.
NUMERIC_KEYWORDS: dict[str, type[int] | type[float]] = {
    "timeout": float,
    "command_timeout": float,
    "statement_cache_size": int,
    "prepared_statement_cache_size": int,
    "max_cached_statement_lifetime": int,
    "max_cacheable_statement_size": int,
}
#: Where the address lives in libpq's dictionary (the URL's authority and path).
ADDRESS_KEYS = frozenset({"host", "port", "user", "password", "dbname"})
#: asyncpg's `ssl` also takes booleans; libpq's `sslmode` the equivalent modes.
SSL_BOOLEANS = {"true": "require", "false": "disable"}

#: A schema name turnjudge accepts: a plain identifier, used exactly as written (quoted).
SCHEMA_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class DatabaseUrlError(ValueError):
    """DATABASE_URL (or DB_SCHEMA) cannot be used; the message names the setting."""


@dataclass(frozen=True)
class ParsedDatabaseUrl:
    """One database address, in libpq's terms, plus asyncpg-only keywords it carried."""

    authority_and_path: str
    params: dict[str, str]
    conninfo: dict[str, str]
    asyncpg_extras: dict[str, str]

    def libpq(self) -> str:
        """The URL for libpq / psycopg (`postgresql://`)."""
        return f"postgresql://{self.authority_and_path}{_query(self.params)}"

    def asyncpg(self) -> str:
        """The URL for SQLAlchemy with asyncpg (`postgresql+asyncpg://`)."""
        info = self.conninfo
        query: dict[str, str | list[str]] = {}
        hosts = [h for h in info.get("host", "").split(",")] if info.get("host") else []
        ports = info.get("port", "").split(",") if info.get("port") else []
        host: str | None = None
        port: int | None = None
        if len(hosts) == 1 and not hosts[0].startswith("/") and len(ports) <= 1:
            host = hosts[0]
            port = int(ports[0]) if ports and ports[0] else None
        elif len(hosts) == 1 and len(ports) <= 1:  # a unix-socket directory
            query["host"] = hosts[0]
            if ports and ports[0]:
                query["port"] = ports[0]
        elif hosts:  # several hosts: SQLAlchemy's multi-host form, host:port each
            if len(ports) == 1:
                ports = ports * len(hosts)
            query["host"] = [f"{h}:{p}" if p else h for h, p in zip(hosts, ports, strict=False)]
        dsn_params: dict[str, str] = {}
        for key, value in self.params.items():
            if key in LIBPQ_TO_ASYNCPG:
                query[LIBPQ_TO_ASYNCPG[key]] = value
            elif key in SHARED_KEYWORDS:
                query[key] = value
            elif key in ASYNCPG_DSN_ONLY:
                dsn_params[key] = value
            # Anything else is a libpq transport setting asyncpg cannot honour
            # (keepalives, channel_binding, gssencmode, ...): the libpq form keeps it.
        if dsn_params:
            query["dsn"] = f"postgresql://{_query(dsn_params)}"
        query.update(self.asyncpg_extras)
        url = URL.create(
            ASYNCPG_SCHEME,
            username=info.get("user") or None,
            password=info.get("password") or None,
            host=host,
            port=port,
            database=info.get("dbname") or None,
            query=query,
        )
        return url.render_as_string(hide_password=False)


def _query(params: dict[str, str]) -> str:
    """`?k=v&...` percent-encoded so that libpq, asyncpg and SQLAlchemy all read it alike."""
    if not params:
        return ""
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())


def _split_query(query: str, *, plus_is_space: bool = False) -> dict[str, str]:
    """Decode `k=v&...`; a `+` is a space only for SQLAlchemy's URLs, never for libpq's."""
    decode = unquote_plus if plus_is_space else unquote
    params: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise DatabaseUrlError(f"DATABASE_URL has a malformed query parameter {key!r}")
        params[decode(key)] = decode(value)
    return params


def _from_asyncpg(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split an asyncpg URL's query into libpq parameters and asyncpg-only keywords."""
    libpq: dict[str, str] = {}
    extras: dict[str, str] = {}
    for key, value in params.items():
        if key == "dsn":  # the carrier of DSN-only parameters (see `ParsedDatabaseUrl.asyncpg`)
            _, _, dsn_query = value.partition("?")
            libpq.update(_split_query(dsn_query))
        elif key in ASYNCPG_TO_LIBPQ:
            if key == "ssl":
                value = SSL_BOOLEANS.get(value.lower(), value)
            libpq[ASYNCPG_TO_LIBPQ[key]] = value
        elif key in ASYNCPG_ONLY:
            extras[key] = value
        else:
            libpq[key] = value
    return libpq, extras


def _asyncpg_parts(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """A `postgresql+asyncpg://` URL read as SQLAlchemy reads it, re-addressed for libpq.

    Returns the libpq authority and path, libpq parameters, and asyncpg-only keywords.
    """
    try:
        sa_url = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError("DATABASE_URL is not a valid URL") from None
    query = dict(sa_url.query)
    params: dict[str, str] = {}
    netloc = ""
    host, port = query.pop("host", None), query.pop("port", None)
    if isinstance(host, tuple):  # SQLAlchemy's multi-host form: host=h1:p1&host=h2:p2
        netloc = ",".join(host)
    elif host is not None and host.startswith("/"):  # a unix-socket directory
        params["host"] = host
        if isinstance(port, str):
            params["port"] = port
    elif host is not None:
        netloc = host + (f":{port}" if isinstance(port, str) else "")
    elif sa_url.host:
        netloc = f"[{sa_url.host}]" if ":" in sa_url.host else sa_url.host
        netloc += f":{sa_url.port}" if sa_url.port else ""
    userinfo = ""
    if sa_url.username:
        userinfo = quote(sa_url.username, safe="")
        if sa_url.password is not None:
            userinfo += ":" + quote(str(sa_url.password), safe="")
        userinfo += "@"
    single: dict[str, str] = {}
    for key, value in query.items():
        if not isinstance(value, str):
            raise DatabaseUrlError(f"DATABASE_URL repeats the query parameter {key!r}")
        single[key] = value
    libpq_params, extras = _from_asyncpg(single)
    database = quote(sa_url.database or "", safe="")
    return f"{userinfo}{netloc}/{database}", {**params, **libpq_params}, extras


def parse_database_url(url: str) -> ParsedDatabaseUrl:
    """Read `url` (any accepted form) with libpq's semantics; raise `DatabaseUrlError`.

    Messages never repeat the URL: it may hold a password.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in ACCEPTED_SCHEMES:
        got = repr(scheme.lower()) if sep else "no '<scheme>://'"
        raise DatabaseUrlError(
            f"DATABASE_URL must be a PostgreSQL URL starting with one of "
            f"{', '.join(s + '://' for s in ACCEPTED_SCHEMES)} (got {got}); "
            "leave it unset for the embedded database"
        )
    if "#" in rest:
        raise DatabaseUrlError("DATABASE_URL must not contain a '#' fragment")
    extras: dict[str, str] = {}
    if scheme.lower() == ASYNCPG_SCHEME:
        authority_and_path, params, extras = _asyncpg_parts(url.strip())
    else:
        authority_and_path, _, query = rest.partition("?")
        params = _split_query(query)
    for key in ADDRESS_KEYS & params.keys() - {"host", "port"}:
        # user/password/dbname in the query would silently override the authority; allowed
        # by libpq, but keep one place for them so the two renderings cannot disagree.
        raise DatabaseUrlError(f"DATABASE_URL: put {key!r} in the URL itself, not its query")
    libpq_url = f"postgresql://{authority_and_path}{_query(params)}"
    try:
        conninfo = {k: str(v) for k, v in conninfo_to_dict(libpq_url).items()}
    except psycopg.ProgrammingError as exc:
        raise DatabaseUrlError(
            f"DATABASE_URL is not a valid PostgreSQL URL: {_redact(str(exc), rest)}"
        ) from None
    for key, value in {**params, **extras}.items():
        kind = NUMERIC_KEYWORDS.get(LIBPQ_TO_ASYNCPG.get(key, key))
        if kind is not None:
            try:
                kind(value)
            except ValueError:
                raise DatabaseUrlError(f"DATABASE_URL: {key} must be a number") from None
    for port in filter(None, conninfo.get("port", "").split(",")):
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise DatabaseUrlError(f"DATABASE_URL has an invalid port {port!r}")
    return ParsedDatabaseUrl(authority_and_path, params, conninfo, extras)


def _redact(message: str, rest: str) -> str:
    """Hide the URL's userinfo (password included) in a message from libpq's parser."""
    userinfo = rest.partition("?")[0].rpartition("@")[0]
    secrets = {userinfo, unquote(userinfo)}
    password = userinfo.partition(":")[2]
    secrets |= {password, unquote(password)}
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def check_schema_name(name: str) -> str:
    """Validate DB_SCHEMA: an identifier PostgreSQL accepts as a new schema's name."""
    if not SCHEMA_PATTERN.fullmatch(name):
        raise DatabaseUrlError(
            f"DB_SCHEMA must be a plain identifier (letters, digits, _ or $, not starting "
            f"with a digit, at most 63 characters); got {name!r}"
        )
    if name.lower().startswith("pg_"):
        raise DatabaseUrlError(f"DB_SCHEMA {name!r}: names starting with pg_ are reserved")
    return name


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier (validated names hold no double quote)."""
    return '"' + check_schema_name(name) + '"'


def search_path(schema: str) -> str:
    """The search_path for turnjudge in `schema`.

    Everything turnjudge creates goes to the first entry; `public` stays readable behind it
    because that is where an already-installed pgvector extension usually lives.
    """
    return f"{quote_identifier(schema)},public"


def with_search_path(parsed: ParsedDatabaseUrl, schema: str) -> ParsedDatabaseUrl:
    """`parsed` with `-c search_path=...` appended to libpq's `options` (once).

    Both renderings then carry it: libpq sends `options` at connection start-up, and asyncpg
    receives it through its DSN keyword, so every client of either URL lands in `schema`.
    """
    setting = "-csearch_path=" + search_path(schema)
    options = parsed.params.get("options", "")
    if options.endswith(setting):
        return parsed
    params = {**parsed.params, "options": f"{options} {setting}".strip()}
    conninfo = {**parsed.conninfo, "options": params["options"]}
    return ParsedDatabaseUrl(parsed.authority_and_path, params, conninfo, parsed.asyncpg_extras)
