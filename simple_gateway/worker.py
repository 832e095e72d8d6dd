"""The gunicorn worker: gthread, with request heads read in the event loop.

design: gunicorn's gthread worker hands every new connection to a request thread, which
then blocks until the request head has arrived. A client that sends its head slowly, or
never finishes it (slowloris), holds a thread for as long as it likes, and a few thousand
such connections take every thread. This worker reads heads in its event loop instead,
without blocking: bytes collect in a per-connection buffer until the blank line that ends
the head, and only then does the connection go to a thread, the bytes pushed back into
gunicorn's parser so it parses them as if it had read them itself. A head not complete
within HEADER_TIMEOUT is answered 408 and closed (an idle kept-alive connection is simply
closed at its keep-alive timeout, as before); one larger than MAX_HEAD_BYTES is answered 431.
Heads wait in a deque ordered by deadline; a connection that leaves it early is only marked,
so nothing ever searches the deque.

Errors gunicorn raises before the app runs (a malformed request line, a header too large)
are answered in the gateway's JSON error shape with an x-request-id, logged and recorded,
instead of gunicorn's HTML page.

On SIGTERM the worker tells the Gateway when in-flight exchanges must end (see server.py).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import resource
import selectors
import socket
import sys
import threading
import time
from collections import deque
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.util import write_nonblock
from gunicorn.workers import gthread

from simple_gateway import errors
from simple_gateway.ids import ENVIRON_KEY, accept_client_id, new_id

log = logging.getLogger(__name__)

PRESTART_THREADS = 256
DEFAULT_HEADER_TIMEOUT = 10.0
MAX_HEAD_BYTES = 64 * 1024
HEAD_READ_SIZE = 16 * 1024
LINGER_SECONDS = 2.0  # as gunicorn's close_graceful: time for the peer to take our FIN
LINGER_DRAIN_BYTES = 64 * 1024
ACCEPTS_PER_EVENT = 64  # a burst of new connections is taken in a few loop turns, not one each
# How long a thread may hold the interpreter lock while another waits for it (CPython's
# default is 5 ms). Every waiting thread wakes once per interval to ask for the lock: with
# a thousand streams waiting, the default made about 200,000 futile wake-ups a second, and
# a burst's rounds sometimes spent ten times their usual CPU in the kernel handing the lock
# around (bench/results.md). Request threads give the lock up at every socket call anyway;
# the interval only bounds pure-Python stretches, and the writer works in short slices.
SWITCH_INTERVAL = 0.05
HEAD_END = b"\r\n\r\n"

# gunicorn's parse errors: status and error code; any other ParseException is a 400.
_PARSE_ERRORS: dict[type[Exception], tuple[int, str]] = {
    http_errors.LimitRequestLine: (414, "request_line_too_long"),
    http_errors.LimitRequestHeaders: (431, "request_headers_too_large"),
    http_errors.UnsupportedTransferCoding: (501, "unsupported_transfer_coding"),
    http_errors.ExpectationFailed: (417, "expectation_failed"),
    http_errors.ForbiddenProxyRequest: (403, "forbidden"),
    http_errors.ConfigurationProblem: (500, "configuration_problem"),
    http_errors.InvalidResponseHeader: (500, "internal_error"),  # the app's fault, not the client's
    http_errors.InvalidResponseHeaderName: (500, "internal_error"),
    http_errors.ParseException: (400, "bad_request"),
}


def drain_margin(graceful_timeout: float) -> float:
    """Seconds kept back at the end of the graceful timeout for writing records."""
    return min(5.0, graceful_timeout * 0.2)


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; the limit now in force.

    Each client connection is a file, and so is each upstream connection: the usual soft
    limit of 1,024 is far below what a worker holding thousands of connections needs.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def http_layer_error(exc: BaseException) -> errors.GatewayError:
    """The gateway's error for an exception gunicorn raised before or around the app."""
    for cls in type(exc).__mro__:
        if cls in _PARSE_ERRORS:
            status, code = _PARSE_ERRORS[cls]
            if status >= 500:
                break
            return errors.for_status(status, code, f"malformed request: {exc}")
    return errors.InternalError("the gateway failed while handling this request")


def error_response(error: errors.GatewayError, request_id: str) -> bytes:
    """A complete HTTP/1.1 response for `error`, closing the connection."""
    body = error.body()
    lines = [f"HTTP/1.1 {error.status} {_reason(error.status)}"]
    lines += [f"{name}: {value}" for name, value in errors.error_headers(error, request_id)]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RequestThreads(futures.ThreadPoolExecutor):
    """The request threads: PRESTART_THREADS start with the worker, the rest when needed.

    A thread started while hundreds of others compete for the interpreter lock can take
    milliseconds to run its first line, and ThreadPoolExecutor starts each new one in
    `submit`, waiting for it: in gunicorn's event loop, a burst of a thousand new streams
    stalled for seconds behind those start-ups. Here `submit` never waits: when no thread
    is idle it asks a starter thread for one. Threads already running absorb ordinary
    bursts (each idle one costs about 20 KB).
    """

    def __init__(self, max_workers: int, prestart: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="request")
        self._wanted = threading.Semaphore(0)
        threading.Thread(target=self._start_threads, name="thread-starter", daemon=True).start()
        count = min(max_workers, prestart)
        started = threading.Barrier(count + 1)
        for _ in range(count):
            self.submit(started.wait)
        started.wait()

    def _adjust_thread_count(self) -> None:  # called by submit, in the event loop
        if self._idle_semaphore.acquire(timeout=0):
            return
        self._wanted.release()

    def _start_threads(self) -> None:
        while True:
            self._wanted.acquire()
            if self._shutdown:
                return
            super()._adjust_thread_count()  # an idle thread since, or a new one

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        self._wanted.release()


class Connection(gthread.TConn):  # type: ignore[misc]
    """gthread's connection, closed gracefully without blocking the event loop."""

    def __init__(self, worker: GatewayWorker, *args: Any) -> None:
        super().__init__(*args)
        self.worker = worker
        self.head: bytearray | None = None
        self.head_deadline = 0.0

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.worker.linger(self)
        else:
            super().close()


class GatewayWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker: heads read in the event loop, errors in JSON, drained stops."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heads: deque[tuple[float, Connection]] = deque()  # (deadline, connection)
        self.lingering: deque[tuple[float, socket.socket]] = deque()
        self.header_timeout = DEFAULT_HEADER_TIMEOUT

    def init_process(self) -> None:
        limit = raise_open_file_limit()
        sys.setswitchinterval(SWITCH_INTERVAL)
        # Leave room for each thread's upstream connection and the worker's own files.
        room = limit - int(self.cfg.threads) - 64
        self.worker_connections = max(64, min(int(self.cfg.worker_connections), room))
        super().init_process()

    def get_thread_pool(self) -> futures.ThreadPoolExecutor:
        return RequestThreads(int(self.cfg.threads), PRESTART_THREADS)

    def run(self) -> None:
        gateway = _gateway_of(self)
        if gateway is not None:
            self.header_timeout = float(gateway.settings.header_timeout)
        # Everything loaded so far lives as long as the worker: moved out of the collector's
        # generations, a full collection no longer walks the modules, Flask and the app, and
        # takes under a millisecond instead of 20-30 ms in the middle of some request.
        gc.freeze()
        super().run()

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.alive:
            gateway = _gateway_of(self)
            if gateway is not None:
                timeout = float(self.cfg.graceful_timeout)
                deadline = time.monotonic() + timeout - drain_margin(timeout)
                gateway.begin_shutdown(deadline)
        super().handle_exit(sig, frame)

    # -- reading heads in the event loop ----------------------------------------------------

    def _reads_heads(self, conn: Connection) -> bool:
        """TLS and HTTP/2 prior knowledge read the connection themselves: threads do that."""
        return not self.cfg.is_ssl and not gthread.negotiation.prior_knowledge_allowed(
            self.cfg, conn.client
        )

    def accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                client, addr = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE) and self._drop_oldest_head():
                    continue
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    if exc.errno in (errno.EMFILE, errno.ENFILE):
                        log.warning("out of file descriptors: %s", exc)
                        return
                    raise
                return
            self.nr_conns += 1
            conn = Connection(self, self.cfg, client, addr, listener.getsockname())  # non-blocking
            if self._reads_heads(conn):
                self._await_head(conn)
            else:
                client.setblocking(True)
                self.enqueue_req(conn)
            if self.nr_conns >= self.worker_connections:
                return

    def on_client_socket_readable(self, conn: Connection, client: Any) -> None:
        """A kept-alive connection has its next request coming: read its head here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

    def _await_head(self, conn: Connection) -> None:
        conn.head = bytearray()
        conn.head_deadline = time.monotonic() + self.header_timeout
        self.heads.append((conn.head_deadline, conn))
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_data, conn))
        self._on_head_data(conn, conn.sock)  # the request has often arrived with the connection

    def _on_head_data(self, conn: Connection, _sock: Any) -> None:
        head = conn.head
        if head is None:
            return
        try:
            data = conn.sock.recv(HEAD_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._leave_heads(conn)
            self._close(conn)
            return
        searched = max(0, len(head) - len(HEAD_END) + 1)
        head += data
        # A bare-LF head is handed on too: gunicorn's parser answers it, not the deadline.
        if head.find(HEAD_END, searched) >= 0 or head.find(b"\n\n", searched) >= 0:
            self._leave_heads(conn)
            conn.init()
            conn.parser.unreader.unread(bytes(head))
            conn.data_ready = True
            self.enqueue_req(conn)
        elif len(head) > MAX_HEAD_BYTES:
            self._leave_heads(conn)
            error = errors.for_status(
                431,
                "request_headers_too_large",
                f"malformed request: the request head exceeds {MAX_HEAD_BYTES} bytes",
            )
            self._refuse(conn, error)

    def _leave_heads(self, conn: Connection) -> None:
        conn.head = None  # its entry in self.heads is skipped when it comes up
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _refuse(self, conn: Connection, error: errors.GatewayError) -> None:
        log.info("connection from %s refused: %s %s", _ip(conn.client), error.status, error.message)
        with contextlib.suppress(OSError):
            conn.sock.send(error_response(error, new_id()))
        self.nr_conns -= 1
        self.linger(conn)  # unread bytes would turn a plain close into a reset

    def _close(self, conn: Connection) -> None:
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        self._expire_lingering(now)
        while self.heads:
            deadline, conn = self.heads[0]
            waiting = conn.head is not None and conn.head_deadline == deadline
            if waiting and deadline > now:
                break
            self.heads.popleft()
            if waiting:
                self._expire_head(conn)

    def _expire_head(self, conn: Connection) -> None:
        started = bool(conn.head)
        self._leave_heads(conn)
        if not started:  # an idle connection: nothing to answer
            self._close(conn)
            return
        timeout = errors.for_status(
            408,
            "request_timeout",
            f"the request head did not arrive within {self.header_timeout:g} s",
        )
        self._refuse(conn, timeout)

    def _drop_oldest_head(self) -> bool:
        """Out of files: close the connection that has waited longest for its head."""
        while self.heads:
            deadline, conn = self.heads.popleft()
            if conn.head is not None and conn.head_deadline == deadline:
                self._leave_heads(conn)
                self._close(conn)
                return True
        return False

    def _cap_keepalive(self, deadline: float) -> None:
        super()._cap_keepalive(deadline)
        capped: deque[tuple[float, Connection]] = deque()
        for waiting_until, conn in self.heads:  # one cap for every entry keeps the order
            if conn.head is not None and conn.head_deadline == waiting_until:
                conn.head_deadline = min(waiting_until, deadline)
                capped.append((conn.head_deadline, conn))
        self.heads = capped

    # -- closing without waiting ------------------------------------------------------------

    def linger(self, conn: Connection) -> None:
        """Close after the peer has read our last bytes: send FIN, drain, close on its FIN.

        gunicorn does this with a blocking read of up to two seconds in the event loop; with
        a thousand connections closing at once the loop stalled for seconds behind peers
        that were simply slow to answer. Here the drain waits in the loop like any socket.
        """
        sock = conn.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._on_linger_data, 0))
        except (OSError, ValueError, KeyError):
            sock.close()
            return
        self.lingering.append((time.monotonic() + LINGER_SECONDS, sock))

    def _on_linger_data(self, drained: int, sock: socket.socket) -> None:
        try:
            data = sock.recv(LINGER_DRAIN_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        drained += len(data)
        if data and drained < LINGER_DRAIN_BYTES:
            self.poller.modify(sock, selectors.EVENT_READ, partial(self._on_linger_data, drained))
            return
        self.poller.unregister(sock)
        sock.close()

    def _expire_lingering(self, now: float) -> None:
        while self.lingering and (self.lingering[0][0] <= now or self.lingering[0][1].fileno() < 0):
            _, sock = self.lingering.popleft()
            if sock.fileno() >= 0:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.poller.unregister(sock)
                sock.close()

    # -- errors before the app runs ---------------------------------------------------------

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        error = http_layer_error(exc)
        ip = _ip(addr)
        if error.status >= 500:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            self.log.warning("Invalid request from ip=%s: %s", ip, exc)
        request_id = _client_request_id(req) or new_id()
        self._record(req, ip, error, request_id)
        try:
            write_nonblock(client, error_response(error, request_id))
        except Exception:
            self.log.debug("Failed to send error message.")

    def _record(self, req: Any, ip: str, error: errors.GatewayError, request_id: str) -> None:
        gateway = _gateway_of(self)
        if gateway is None or error.status >= 500:  # only requests refused as malformed
            return
        uri = str(getattr(req, "uri", "") or "")
        environ = {
            "REQUEST_METHOD": str(getattr(req, "method", "") or ""),
            "RAW_URI": uri,
            "PATH_INFO": str(getattr(req, "path", "") or ""),
            "QUERY_STRING": str(getattr(req, "query", "") or ""),
            "REMOTE_ADDR": ip,
            ENVIRON_KEY: request_id,
        }
        try:
            gateway.forwarder.record_rejection(environ, error)
        except Exception:
            log.exception("could not record a request refused by the HTTP layer")


def _client_request_id(req: Any) -> str | None:
    for name, value in getattr(req, "headers", None) or ():
        if name.upper() == "X-REQUEST-ID":
            return accept_client_id(value)
    return None


def _gateway_of(worker: Any) -> Any:
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None) or {}
    return extensions.get("simple_gateway")


def _ip(addr: Any) -> str:
    return str(addr[0]) if isinstance(addr, tuple) and addr else ""


def _reason(status: int) -> str:
    from http.client import responses

    return responses.get(status, "Error")
