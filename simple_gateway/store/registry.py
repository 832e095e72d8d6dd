"""Which Store a database URL opens: a registry of factories keyed by URL scheme.

The built-in stores register through `register_store`, the same call another module would
use to add one. Factories import their driver when called, so registering costs nothing and
nothing connects until a store is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from simple_gateway.store.base import Store

StoreFactory = Callable[[str], Store]
"""Builds a store from a full database URL; must not connect yet."""

_factories: dict[str, StoreFactory] = {}

SQLITE_PREFIX = "sqlite:///"
# libpq's other spelling: `host=db dbname=gateway user=app`.
_KEYWORD_DSN = re.compile(r"^\s*[A-Za-z_]+\s*=")


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Open URLs of `scheme` (case-insensitive) with `factory`, replacing any earlier one."""
    _factories[scheme.lower()] = factory


def known_schemes() -> list[str]:
    return sorted(_factories)


def open_store(database_url: str | None, sqlite_path: str) -> Store:
    """The store for DATABASE_URL; without one, SQLite at `sqlite_path`."""
    if not database_url:
        return _sqlite(SQLITE_PREFIX + sqlite_path)
    if _KEYWORD_DSN.match(database_url):
        scheme = "postgresql"
    else:
        scheme = urlsplit(database_url).scheme.lower()
    factory = _factories.get(scheme)
    if factory is None:
        # Only the scheme is named: the rest of the URL may hold a password.
        raise ValueError(
            f"unknown database URL scheme {scheme!r}; known: {', '.join(known_schemes())}"
        )
    return factory(database_url)


def _sqlite(url: str) -> Store:
    """`sqlite:///relative/path` or `sqlite:////absolute/path`, as SQLAlchemy spells them."""
    from simple_gateway.store.sqlite import SqliteStore

    if url[: len(SQLITE_PREFIX)].lower() != SQLITE_PREFIX or len(url) == len(SQLITE_PREFIX):
        raise ValueError("a SQLite URL looks like sqlite:///path/to/file.db")
    return SqliteStore(url[len(SQLITE_PREFIX) :])


def _postgres(url: str) -> Store:
    from simple_gateway.store.postgres import PostgresStore

    return PostgresStore(url)


register_store("sqlite", _sqlite)
register_store("postgres", _postgres)
register_store("postgresql", _postgres)
