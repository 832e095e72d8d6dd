"""The dashboard's per-worker services: credentials, sessions, login throttle, database reader.

Built by the app factory without touching the disk or the database; the first request that
needs one of them sets it up (the data-folder files, the connection pool).
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

from flask import current_app

from simple_gateway.dashboard.auth import (
    Credentials,
    LoginThrottle,
    SessionStore,
    data_folder,
    resolve_credentials,
)
from simple_gateway.dashboard.db import Database, open_database
from simple_gateway.settings import Settings

EXTENSION = "simple_gateway.dashboard"


class Dashboard:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.throttle = LoginThrottle()
        self._lock = threading.Lock()

    @cached_property
    def credentials(self) -> Credentials:
        with self._lock:
            return resolve_credentials(self.settings)[0]

    @cached_property
    def sessions(self) -> SessionStore:
        with self._lock:
            return SessionStore(data_folder(self.settings))

    @cached_property
    def db(self) -> Database:
        with self._lock:
            return open_database(self.settings.database_url or None, self.settings.db_path)

    @property
    def file_root(self) -> Path:
        return Path(self.settings.file_storage_path).absolute()

    @property
    def login_kind(self) -> str:
        """`password` when ADMIN_USER/ADMIN_PASSWORD are the credentials, else `token`."""
        return "password" if self.credentials.user else "token"


def current_dashboard() -> Dashboard:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
