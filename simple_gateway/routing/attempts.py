"""The attempt loop: try a request's deployments in order until one answers.

Retries happen only before anything has reached the client: the loop returns the
first response it keeps, and from then on the forwarder relays it (a stream cut short
later is never repeated). What is retried, and why:

- connect failures (refused, unreachable, connect timeout): the provider never saw the
  request; retried, on the same deployment after a backoff or at once on another;
- 429 and 5xx answers: the provider refused the work; retried the same way, after the
  provider's `Retry-After` when it gave one (up to RETRY_AFTER_LIMIT);
- a read timeout or a connection closed after the request was sent: the provider may
  have done the work (and billed it). Chat completions and embeddings change nothing
  upstream, so the request fails over to the *next* deployment, but the same deployment
  is never asked again within the request: it may still be working on it.

Every failure takes the deployment out of rotation for the cooldown (or for its
Retry-After when longer), so the next requests go to the others at once.
"""

from __future__ import annotations

import http.client
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from simple_gateway import errors
from simple_gateway.ids import new_id
from simple_gateway.proxy.upstream import Response, Target, UpstreamConnection
from simple_gateway.records.model import AttemptRow, iso
from simple_gateway.routing.choice import Cooldowns
from simple_gateway.routing.config import Deployment, RoutingDefaults

log = logging.getLogger(__name__)

RETRY_AFTER_LIMIT = 30.0  # a longer Retry-After is not waited for within a request
_ERROR_BODY_LIMIT = 64 * 1024

# Sends one request upstream: (target, method, headers, body, timeout) -> (conn, response).
SendFn = Callable[
    [Target, str, dict[str, str], bytes | None, float | None],
    tuple[UpstreamConnection, Response],
]


class RoutingObserver(Protocol):
    def deployment_cooled(self, deployment: str) -> None: ...


@dataclass
class Prepared:
    """One deployment's upstream request, built before its first attempt."""

    target: Target
    headers: dict[str, str]
    body: bytes


class Failure(Exception):
    """An attempt that failed in a way another attempt may fix."""

    def __init__(
        self,
        kind: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


def attempt_sequence(order: Sequence[Deployment], retries: int) -> list[Deployment]:
    """Each deployment once, then `retries` more attempts going round the order again."""
    if not order:
        return []
    return list(order) + [order[i % len(order)] for i in range(retries)]


class AttemptLoop:
    def __init__(
        self,
        defaults: RoutingDefaults,
        cooldowns: Cooldowns,
        observer: RoutingObserver | None,
        rng: random.Random,
        stopped: Callable[[], bool],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.defaults = defaults
        self.cooldowns = cooldowns
        self.observer = observer
        self.rng = rng
        self._stopped = stopped
        self._sleep = sleep

    def run(
        self,
        sequence: Sequence[Deployment],
        prepare: Callable[[Deployment], Prepared],
        send: SendFn,
        log_attempt: Callable[[AttemptRow], None],
    ) -> tuple[Deployment, UpstreamConnection, Response]:
        """The first kept response; raises the last failure's error when none is kept."""
        prepared: dict[str, Prepared] = {}
        tried: dict[str, int] = {}
        not_before: dict[str, float] = {}
        barred: set[str] = set()
        number = 0
        last_error: errors.GatewayError | None = None
        for index, deployment in enumerate(sequence):
            name = deployment.name
            if name in barred:
                continue
            remaining = [d for d in sequence[index + 1 :] if d.name not in barred]
            if not self._wait_turn(name, tried.get(name, 0), not_before):
                barred.add(name)
                continue
            if name not in prepared:
                prepared[name] = prepare(deployment)
            call = prepared[name]
            tried[name] = tried.get(name, 0) + 1
            number += 1
            started = time.time()
            try:
                conn, response = self._attempt(deployment, call, send, bool(remaining))
            except Failure as failure:
                last_error = _as_error(failure)
                outcome = "retried" if remaining else "gave_up"
                log_attempt(_row(number, deployment, started, failure.status, outcome, failure))
                self._cool(deployment, failure, not_before)
                if failure.kind in ("upstream_timeout", "upstream_protocol_error"):
                    barred.add(name)  # it may have acted on the request: never again here
                log.warning("attempt %d on %s failed (%s): %s", number, name, failure.kind, failure)
                continue
            log_attempt(_row(number, deployment, started, response.status, "answered", None))
            return deployment, conn, response
        if last_error is None:
            last_error = errors.UpstreamUnreachable("no deployment could be tried")
        raise last_error

    def _attempt(
        self, deployment: Deployment, call: Prepared, send: SendFn, more: bool
    ) -> tuple[UpstreamConnection, Response]:
        try:
            headers = dict(call.headers)
            conn, response = send(call.target, "POST", headers, call.body, deployment.timeout)
        except errors.UpstreamUnreachable as exc:
            raise Failure(exc.code, exc.message) from exc
        except errors.UpstreamTimeout as exc:
            kind = "connect_timeout" if "connecting" in exc.message else exc.code
            raise Failure(kind, exc.message) from exc
        except errors.UpstreamProtocolError as exc:
            raise Failure(exc.code, exc.message) from exc
        status = response.status
        if more and (status == 429 or status >= 500):
            retry_after = _retry_after(response.getheader("Retry-After"))
            detail = _drain(conn, response)
            message = f"the provider answered {status}: {detail}"
            raise Failure("upstream_status", message, status, retry_after)
        return conn, response

    def _cool(self, deployment: Deployment, failure: Failure, not_before: dict[str, float]) -> None:
        retry_after = failure.retry_after
        seconds = max(self.defaults.cooldown, retry_after or 0.0)
        if retry_after:
            not_before[deployment.name] = time.monotonic() + retry_after
        if self.cooldowns.cool(deployment, seconds) and self.observer is not None:
            self.observer.deployment_cooled(deployment.name)

    def _wait_turn(self, name: str, tries: int, not_before: dict[str, float]) -> bool:
        """Pause before going back to a deployment; False when its Retry-After is too long."""
        if tries == 0:
            return True
        cap = min(self.defaults.max_backoff, self.defaults.backoff * 2 ** (tries - 1))
        delay = cap / 2 + self.rng.uniform(0, cap / 2)  # exponential, with jitter
        wait_until = not_before.get(name, 0.0)
        now = time.monotonic()
        if wait_until - now > RETRY_AFTER_LIMIT:
            return False
        deadline = max(now + delay, wait_until)
        while not self._stopped():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            self._sleep(min(left, 0.05))
        return True  # stopped: the send that follows fails at once and ends the exchange


def _drain(conn: UpstreamConnection, response: Response) -> str:
    """Read a refused attempt's (small) body for the record, then drop the connection."""
    try:
        data = response.read(_ERROR_BODY_LIMIT)
    except (OSError, http.client.HTTPException):
        data = b""
    conn.close()
    return data[:300].decode("utf-8", "replace")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _as_error(failure: Failure) -> errors.GatewayError:
    if failure.kind in ("connect_timeout", "upstream_timeout"):
        return errors.UpstreamTimeout(str(failure))
    if failure.kind == "upstream_protocol_error":
        return errors.UpstreamProtocolError(str(failure))
    return errors.UpstreamUnreachable(str(failure))


def _row(
    number: int,
    deployment: Deployment,
    started: float,
    status: int | None,
    outcome: str,
    failure: Failure | None,
) -> AttemptRow:
    return AttemptRow(
        id=new_id(),
        attempt=number,
        deployment=deployment.name,
        provider=deployment.provider,
        model=deployment.model,
        started_at=iso(started) or "",
        duration_ms=round((time.time() - started) * 1000, 3),
        status=status,
        outcome=outcome,
        error_kind=failure.kind if failure else None,
        error_message=str(failure)[:500] if failure else None,
    )
