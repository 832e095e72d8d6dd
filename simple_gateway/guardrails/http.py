"""Outbound HTTP for guardrails (moderation, webhook, judge): one pooled Session per worker.

The session is made on first use in the process that uses it, so a worker never shares
the master's connections. Keys travel only in the headers of a request; errors are
reported without them (a `requests` exception names the URL, never the headers).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

CONNECT_TIMEOUT = 3.0


class OutboundHTTP:
    def __init__(self, pool_size: int = 64) -> None:
        self._pool_size = pool_size
        self._session: requests.Session | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def session(self) -> requests.Session:
        session = self._session
        if session is not None and self._pid == os.getpid():
            return session
        # requests is imported on first use: a worker whose guardrails make no HTTP call
        # never holds it (~15 MB with urllib3 and charset_normalizer).
        import requests
        from requests.adapters import HTTPAdapter

        with self._lock:
            if self._session is None or self._pid != os.getpid():
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=16, pool_maxsize=self._pool_size)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.trust_env = False  # no .netrc or proxy credentials slipped in
                self._session, self._pid = session, os.getpid()
            return self._session

    def post_json(
        self, url: str, payload: Any, timeout: float, headers: dict[str, str] | None = None
    ) -> Any:
        """POST JSON, return the parsed JSON answer; OutboundError on any failure.

        A transport error is reported by its kind and the URL without its query string:
        `requests` puts the whole URL in its messages, and a query may carry a token.
        """
        session = self.session()
        import requests

        try:
            response = session.post(
                url,
                json=payload,
                headers=headers,
                timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
            )
        except requests.Timeout:
            raise OutboundError(f"{_where(url)} did not answer within {timeout:g}s") from None
        except requests.RequestException as exc:
            raise OutboundError(
                f"{_where(url)} could not be reached ({type(exc).__name__})"
            ) from None
        if response.status_code >= 300:
            raise OutboundError(f"{_where(url)} answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise OutboundError(f"{_where(url)} answered with something that is not JSON") from None

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


class OutboundError(Exception):
    """A guardrail's outbound call failed (status, body); the message holds no secret."""


def _where(url: str) -> str:
    return url.split("?", 1)[0]
