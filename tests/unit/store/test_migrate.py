"""Migrations: discovery, statement splitting, idempotence, atomicity, concurrent start-up."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import pytest

from simple_gateway.records.model import FileRef
from simple_gateway.store.migrate import (
    MIGRATIONS_ROOT,
    discover,
    migrate_postgres,
    migrate_sqlite,
    sqlite_statements,
)
from simple_gateway.store.postgres import PostgresStore
from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import fresh_postgres_database, make_row

PROCESSES = 6
VIEWS = ("recent_requests", "usage_by_model_day", "recent_errors", "guardrail_summary")
SHIPPED = [m.name for m in discover("sqlite")]  # the same names in both dialects (tested below)


def _write(root: Path, dialect: str, name: str, sql: str) -> None:
    folder = root / dialect
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql, encoding="utf-8")


def _migrate_in_process(
    dialect: str, target: str, barrier: Barrier, results: multiprocessing.Queue
) -> None:
    """Child process: wait for the others, then migrate; report what was applied or the error."""
    store = SqliteStore(target) if dialect == "sqlite" else PostgresStore(target)
    barrier.wait()
    try:
        results.put(("ok", store.migrate()))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(("error", repr(exc)))
    finally:
        store.close()


def _race(dialect: str, target: str) -> list[tuple[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_migrate_in_process, args=(dialect, target, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes


# Discovery and splitting


def test_discover_orders_by_number_and_ignores_other_files(tmp_path: Path) -> None:
    _write(tmp_path, "sqlite", "0002_more.sql", "SELECT 1;")
    _write(tmp_path, "sqlite", "0001_initial.sql", "SELECT 1;")
    _write(tmp_path, "sqlite", "0010_later.sql", "SELECT 1;")
    _write(tmp_path, "sqlite", "README.md", "not a migration")
    _write(tmp_path, "sqlite", "draft.sql", "SELECT 1;")
    assert [m.name for m in discover("sqlite", tmp_path)] == [
        "0001_initial",
        "0002_more",
        "0010_later",
    ]


def test_discover_refuses_two_files_with_one_number(tmp_path: Path) -> None:
    _write(tmp_path, "sqlite", "0001_a.sql", "SELECT 1;")
    _write(tmp_path, "sqlite", "0001_b.sql", "SELECT 1;")
    with pytest.raises(ValueError, match="0001"):
        discover("sqlite", tmp_path)


def test_discover_names_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="oracle"):
        discover("oracle", tmp_path)


def test_the_repository_ships_the_same_migrations_for_both_dialects() -> None:
    sqlite = [m.name for m in discover("sqlite")]
    postgres = [m.name for m in discover("postgres")]
    assert sqlite == postgres
    assert sqlite[0] == "0001_initial"
    assert MIGRATIONS_ROOT.name == "migrations"


def test_sqlite_statements_keep_semicolons_inside_strings_comments_and_triggers() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE t (a TEXT DEFAULT 'x;y');
        /* block; comment */
        CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN
            UPDATE t SET a = 'seen;' WHERE rowid = new.rowid;
            SELECT 1;
        END;
        INSERT INTO t (a) VALUES ('last')
        -- trailing comment only;
    """
    statements = sqlite_statements(script)
    assert len(statements) == 3
    assert statements[0].endswith("DEFAULT 'x;y');")
    assert "CREATE TRIGGER" in statements[1]
    assert statements[1].rstrip().endswith("END;")
    assert "INSERT INTO t (a) VALUES ('last')" in statements[2]
    conn = sqlite3.connect(":memory:")
    try:
        for statement in statements:
            conn.execute(statement)
        assert conn.execute("SELECT a FROM t").fetchall() == [("seen;",)]
    finally:
        conn.close()


def _names(dialect: str) -> list[str]:
    return [migration.name for migration in discover(dialect)]


# SQLite


def test_sqlite_migrations_apply_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    try:
        assert migrate_sqlite(conn) == SHIPPED
        assert migrate_sqlite(conn) == []
        history = conn.execute("SELECT name, applied_at FROM schema_migrations").fetchall()
        assert [name for name, _ in history] == SHIPPED
        assert history[0][1].endswith("+00:00")
    finally:
        conn.close()


def test_sqlite_migration_commits_with_its_history_row_or_not_at_all(tmp_path: Path) -> None:
    _write(tmp_path, "sqlite", "0001_ok.sql", "CREATE TABLE kept (a INTEGER);")
    _write(
        tmp_path,
        "sqlite",
        "0002_broken.sql",
        "CREATE TABLE half_done (a INTEGER);\nINSERT INTO no_such_table VALUES (1);",
    )
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            migrate_sqlite(conn, tmp_path)
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "kept" in tables
        assert "half_done" not in tables
        names = [n for (n,) in conn.execute("SELECT name FROM schema_migrations")]
        assert names == ["0001_ok"]
        assert not conn.in_transaction

        _write(tmp_path, "sqlite", "0002_broken.sql", "CREATE TABLE half_done (a INTEGER);")
        assert migrate_sqlite(conn, tmp_path) == ["0002_broken"]
    finally:
        conn.close()


def test_sqlite_migrate_restores_the_busy_timeout(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None, timeout=1.5)
    try:
        migrate_sqlite(conn)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (1500,)
    finally:
        conn.close()


def test_sqlite_schema_has_the_columns_of_the_model(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "g.db"))
    try:
        store.migrate()
        conn = sqlite3.connect(tmp_path / "g.db")
        try:
            requests = [r[1] for r in conn.execute("PRAGMA table_info(requests)")]
            files = [r[1] for r in conn.execute("PRAGMA table_info(files)")]
            views = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='view'")}
        finally:
            conn.close()
    finally:
        store.close()
    assert requests == list(make_row())
    assert files == [f.name for f in dataclasses.fields(FileRef)]
    assert views == set(VIEWS)


def test_sqlite_processes_migrating_a_fresh_file_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "fresh" / "gateway.db")
    outcomes = _race("sqlite", path)
    assert [kind for kind, _ in outcomes] == ["ok"] * PROCESSES, outcomes
    applied = [names for _, names in outcomes]
    assert sorted(name for names in applied for name in names) == SHIPPED  # each once
    conn = sqlite3.connect(path)
    try:
        names = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
        assert [n for (n,) in names] == SHIPPED
    finally:
        conn.close()


# PostgreSQL


def test_postgres_migrations_apply_once_and_need_a_transaction() -> None:
    with fresh_postgres_database() as url:
        conn = psycopg2.connect(url)
        try:
            assert migrate_postgres(conn) == SHIPPED
            assert migrate_postgres(conn) == []
            conn.autocommit = True
            with pytest.raises(ValueError, match="autocommit"):
                migrate_postgres(conn)
            with conn.cursor() as cur:
                cur.execute("SELECT name FROM schema_migrations ORDER BY name")
                assert [n for (n,) in cur.fetchall()] == SHIPPED
        finally:
            conn.close()


def test_postgres_migration_commits_with_its_history_row_or_not_at_all(tmp_path: Path) -> None:
    _write(tmp_path, "postgres", "0001_ok.sql", "CREATE TABLE kept (a integer);")
    _write(
        tmp_path,
        "postgres",
        "0002_broken.sql",
        "CREATE TABLE half_done (a integer);\nINSERT INTO no_such_table VALUES (1);",
    )
    with fresh_postgres_database() as url:
        conn = psycopg2.connect(url)
        try:
            with pytest.raises(psycopg2.errors.UndefinedTable):
                migrate_postgres(conn, tmp_path)
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('kept'), to_regclass('half_done')")
                assert cur.fetchone() == ("kept", None)
                cur.execute("SELECT name FROM schema_migrations")
                assert cur.fetchall() == [("0001_ok",)]
            conn.rollback()
        finally:
            conn.close()


def test_postgres_processes_migrating_a_fresh_database_at_once() -> None:
    with fresh_postgres_database() as url:
        outcomes = _race("postgres", url)
        assert [kind for kind, _ in outcomes] == ["ok"] * PROCESSES, outcomes
        applied = [names for _, names in outcomes]
        assert sorted(name for names in applied for name in names) == SHIPPED  # each once
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT name FROM schema_migrations ORDER BY name")
                assert [n for (n,) in cur.fetchall()] == SHIPPED
        finally:
            conn.close()


def test_both_dialects_have_the_same_tables_and_view_columns(tmp_path: Path) -> None:
    sqlite_store = SqliteStore(str(tmp_path / "g.db"))
    try:
        sqlite_store.migrate()
    finally:
        sqlite_store.close()
    conn = sqlite3.connect(tmp_path / "g.db")
    try:
        sqlite_columns = {
            name: [r[1] for r in conn.execute(f"PRAGMA table_info({name})")]
            for name in ("requests", "files", "guardrail_runs", "attempts", *VIEWS)
        }
    finally:
        conn.close()

    with fresh_postgres_database() as url:
        postgres_store = PostgresStore(url)
        try:
            postgres_store.migrate()
        finally:
            postgres_store.close()
        pg = psycopg2.connect(url)
        try:
            with pg.cursor() as cur:
                postgres_columns = {}
                for name in sqlite_columns:
                    cur.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = %s ORDER BY ordinal_position",
                        (name,),
                    )
                    postgres_columns[name] = [c for (c,) in cur.fetchall()]
        finally:
            pg.close()
    assert postgres_columns == sqlite_columns


def test_migrations_are_found_inside_the_package_as_an_installed_copy_finds_them():
    """The lookup an installed package uses (next to its modules) is the one used here."""
    import simple_gateway
    from simple_gateway.store import migrate

    package = Path(simple_gateway.__file__).parent
    assert package / "migrations" == migrate.MIGRATIONS_ROOT
    repository = package.parent / "migrations"
    for dialect in ("sqlite", "postgres"):
        found = [m.path.name for m in migrate.discover(dialect)]
        assert found and found == sorted(p.name for p in (repository / dialect).glob("*.sql"))
