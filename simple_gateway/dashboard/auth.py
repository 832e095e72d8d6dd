"""Who may see the dashboard: admin credentials, sessions, CSRF tokens, slowed failures.

Credentials come from settings: `ADMIN_TOKEN`, or `ADMIN_USER` with `ADMIN_PASSWORD`. With
none set, a random token is generated into `<data folder>/dashboard-token` (the folder of
DB_PATH, owner-only permissions). The session-signing secret lives beside it in
`dashboard-secret`.

design: several workers (and the master printing the start banner) may start at once on a
fresh data folder, and all must end up with the same token and secret. Each file is written
complete to a private temporary name and then hard-linked to its final name: `link` fails
if the name exists, so exactly one writer wins and every other reads the winner's file,
never a half-written one.

A session is a signed cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) naming a random
session id; the id is also a file under `dashboard-sessions/` in the data folder, and the
session is valid only while that file exists and is younger than SESSION_LIFETIME. Logout
deletes the file, so a copy of the old cookie stops working in every worker at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from simple_gateway.settings import Settings, SettingsError

log = logging.getLogger(__name__)

TOKEN_FILE = "dashboard-token"
SECRET_FILE = "dashboard-secret"
SESSIONS_DIR = "dashboard-sessions"
SESSION_COOKIE = "sg_dashboard"
LOGIN_CSRF_COOKIE = "sg_login_csrf"
SESSION_LIFETIME = 12 * 3600
LOGIN_CSRF_LIFETIME = 3600
FAILURE_WINDOW = 900.0  # seconds a failed login is remembered for its address
MAX_FAILURE_DELAY = 8.0


def data_folder(settings: Settings) -> Path:
    return Path(settings.db_path).absolute().parent


def check_settings(settings: Settings) -> None:
    """Preflight: a user without a password (or the reverse) is a configuration error."""
    user, password = settings.admin_user, settings.admin_password
    if bool(user) != bool(password):
        missing = "ADMIN_PASSWORD" if user else "ADMIN_USER"
        raise SettingsError(f"{missing}: ADMIN_USER and ADMIN_PASSWORD are set together")


def shared_secret_file(path: Path) -> tuple[str, bool]:
    """The content of `path`, creating it with a new random token if missing; (value, created).

    Safe when many processes call it at once: they all return the same value.
    """
    try:
        return _read_secret(path), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return (value, True) if created else (_read_secret(path), False)


def _read_secret(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise FileNotFoundError(path)  # cannot happen with link(); treat as missing
    return value


@dataclass(frozen=True)
class Credentials:
    token: str | None  # the admin token (configured or generated), if token login is used
    user: str | None
    password: str | None
    token_file: Path | None  # where a generated token lives

    def token_matches(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())  # type: ignore[union-attr]

    def password_matches(self, user: str, password: str) -> bool:
        if not (self.user and self.password):
            return False
        same_user = hmac.compare_digest(user.encode(), self.user.encode())
        same_password = hmac.compare_digest(password.encode(), self.password.encode())
        return same_user and same_password


def resolve_credentials(settings: Settings) -> tuple[Credentials, bool]:
    """The admin credentials, generating the token file when none are configured.

    Returns the credentials and whether this call generated the token.
    """
    if settings.admin_token:
        return Credentials(settings.admin_token, None, None, None), False
    if settings.admin_user and settings.admin_password:
        return Credentials(None, settings.admin_user, settings.admin_password, None), False
    path = data_folder(settings) / TOKEN_FILE
    token, created = shared_secret_file(path)
    return Credentials(token, None, None, path), created


class LoginThrottle:
    """Failed logins from an address wait longer each time: 0.5 s, 1 s, 2 s, ... up to 8 s."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def failed(self, address: str) -> float:
        """Record a failure; the seconds this response should wait."""
        now = time.monotonic()
        with self._lock:
            count, last = self._failures.get(address, (0, now))
            count = 1 if now - last > FAILURE_WINDOW else count + 1
            self._failures[address] = (count, now)
            if len(self._failures) > 10_000:  # forget the oldest addresses
                for key, _ in sorted(self._failures.items(), key=lambda i: i[1][1])[:5_000]:
                    del self._failures[key]
        return min(MAX_FAILURE_DELAY, 0.5 * 2 ** (count - 1))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


@dataclass(frozen=True)
class Session:
    sid: str
    csrf: str


class SessionStore:
    """Signed session cookies backed by one file per live session in the data folder."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder / SESSIONS_DIR
        secret, _ = shared_secret_file(folder / SECRET_FILE)
        self._signer = URLSafeTimedSerializer(secret, salt="simple-gateway-dashboard")
        self._login_signer = URLSafeTimedSerializer(secret, salt="simple-gateway-login")

    def create(self) -> tuple[Session, str]:
        """A new session and its cookie value."""
        self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._prune()
        session = Session(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        descriptor = os.open(self._file(session.sid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(descriptor)
        return session, self._signer.dumps({"sid": session.sid, "csrf": session.csrf})

    def load(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie, max_age=SESSION_LIFETIME)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        sid, csrf = str(data.get("sid", "")), str(data.get("csrf", ""))
        try:
            age = time.time() - self._file(sid).stat().st_mtime
        except OSError:
            return None  # logged out (or never created here)
        return Session(sid, csrf) if sid and csrf and age < SESSION_LIFETIME else None

    def end(self, session: Session) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(session.sid).unlink()

    def login_csrf(self) -> tuple[str, str]:
        """A CSRF token for the login form, and its signed cookie value."""
        token = secrets.token_urlsafe(24)
        return token, self._login_signer.dumps(token)

    def login_csrf_matches(self, cookie: str | None, given: str) -> bool:
        if not cookie or not given:
            return False
        try:
            expected = self._login_signer.loads(cookie, max_age=LOGIN_CSRF_LIFETIME)
        except BadSignature:
            return False
        return isinstance(expected, str) and hmac.compare_digest(expected, given)

    def _file(self, sid: str) -> Path:
        # The id is hashed: the name on disk is not a usable cookie, and is always a safe name.
        return self._folder / hashlib.sha256(sid.encode()).hexdigest()

    def _prune(self) -> None:
        cutoff = time.time() - SESSION_LIFETIME
        with contextlib.suppress(OSError):
            for path in self._folder.iterdir():
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
