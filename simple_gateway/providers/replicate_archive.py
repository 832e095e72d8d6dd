"""Download the outputs a Replicate prediction names and attach them to its record.

design: a record whose reply may name outputs is handed to a small pool of daemon
threads of this worker (started on first use, so after gunicorn forks), with a
bounded queue; when the queue is full the record is written without its files
rather than waiting. Each thread downloads through one pooled `requests.Session`,
with connect and read timeouts, no redirects (a redirect could lead anywhere), a
size cap, and only from `archive_hosts`. The record is submitted once its outputs
are stored, whatever happened to them; `close()` stops downloading and submits
whatever is still queued.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.enrich import decode_content
from simple_gateway.records.model import FileRef, Record

log = logging.getLogger(__name__)

THREADS = 2
QUEUE_SIZE = 256
MAX_OUTPUTS = 16
MAX_BYTES = 100 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
_PARSE_LIMIT = 4 * 1024 * 1024

Submit = Callable[[Record], None]


@dataclass
class _Job:
    record: Record
    submit: Submit
    blobs: BlobStore


class OutputArchiver:
    def __init__(self, provider: str, hosts: list[str], ca_bundle: str | None = None) -> None:
        self.provider = provider
        self.hosts = hosts
        self.ca_bundle = ca_bundle
        self._queue: queue.Queue[_Job | None] = queue.Queue(QUEUE_SIZE)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._stopping = False

    def allowed(self, url: str) -> bool:
        """Only http(s) URLs on an archive host (or a subdomain of one)."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        return any(host == h or host.endswith("." + h) for h in self.hosts)

    def finish(self, record: Record, submit: Submit, blobs: BlobStore | None) -> None:
        if blobs is None or not self.hosts or self._stopping or not _may_name_outputs(record):
            submit(record)
            return
        self._start()
        try:
            self._queue.put_nowait(_Job(record, submit, blobs))
        except queue.Full:
            log.warning("record %s: archive queue full; outputs not archived", record.request_id)
            submit(record)

    def close(self, timeout: float) -> None:
        self._stopping = True
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        while True:  # whatever no thread took: write it without its outputs
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.submit(job.record)
        if self._session is not None:
            self._session.close()

    # -- the archive threads ---------------------------------------------------------------

    def _start(self) -> None:
        if len(self._threads) == THREADS:
            return
        with self._lock:
            while len(self._threads) < THREADS:
                thread = threading.Thread(
                    target=self._run, name=f"archive-{self.provider}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if not self._stopping:
                    self._archive(job)
            except Exception:
                log.exception("record %s: archiving outputs failed", job.record.request_id)
            finally:
                job.submit(job.record)

    def _archive(self, job: _Job) -> None:
        record = job.record
        urls = [u for u in _output_urls(_reply_json(record)) if self.allowed(u)]
        for index, url in enumerate(urls[:MAX_OUTPUTS]):
            if self._stopping:
                return
            ref = self._download(url, index, job)
            if ref is not None:
                record.files.append(ref)

    def _download(self, url: str, index: int, job: _Job) -> FileRef | None:
        record = job.record
        try:
            with self._client().get(
                url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False
            ) as response:
                if response.status_code != 200:
                    log.warning(
                        "record %s: output %d answered %d; not archived",
                        record.request_id,
                        index,
                        response.status_code,
                    )
                    return None
                content_type = response.headers.get("Content-Type")
                sink = job.blobs.open(
                    record.id, self.provider, "response", content_type, "output", f"-output{index}"
                )
                size = 0
                try:
                    for chunk in response.iter_content(64 * 1024):
                        size += len(chunk)
                        if size > MAX_BYTES:
                            raise ValueError(f"larger than {MAX_BYTES} bytes")
                        sink.write(chunk)
                except BaseException:
                    sink.abort()
                    raise
                return sink.finish()
        except (requests.RequestException, OSError, ValueError) as exc:
            log.warning("record %s: output %d not archived: %s", record.request_id, index, exc)
            return None

    def _client(self) -> requests.Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = requests.Session()
                    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=THREADS)
                    session.mount("https://", adapter)
                    session.mount("http://", adapter)
                    if self.ca_bundle:
                        session.verify = self.ca_bundle
                    self._session = session
        return self._session


def _may_name_outputs(record: Record) -> bool:
    body = record.response_body
    return (
        record.status is not None
        and 200 <= record.status < 300
        and (body.content_type or "").startswith("application/json")
        and bool(body.inline)
        and not body.truncated
    )


def _reply_json(record: Record) -> Any:
    body = record.response_body
    data = body.inline
    if body.content_encoding:
        decoded = decode_content(data, body.content_encoding, _PARSE_LIMIT)
        if decoded is None or not decoded[1]:
            return None
        data = decoded[0]
    try:
        return json.loads(data)
    except ValueError:
        return None


def _output_urls(prediction: Any) -> Iterator[str]:
    """URLs in `output`: a string, a list of them, or a mapping of named outputs."""
    if not isinstance(prediction, dict):
        return
    stack = [prediction.get("output")]
    while stack:
        value = stack.pop(0)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            yield value
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
