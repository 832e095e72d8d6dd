"""The services of one worker process, wired together, and their lifecycle.

`Gateway` is built by the app factory (cheap, no threads or sockets) and started in
the worker after gunicorn forks: the writer and watcher threads would not survive a
fork, and a writer started in the master would keep records no worker ever sends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from simple_gateway.guardrails import Guardrails
from simple_gateway.keys import GatewayKeys, KeyGate, ProviderKeys
from simple_gateway.metrics import GatewayMetrics
from simple_gateway.providers import Router, build_provider, register_builtin_types
from simple_gateway.providers.sink import ProviderSink
from simple_gateway.proxy.exchange import LiveExchanges
from simple_gateway.proxy.forwarder import Forwarder, ForwarderConfig
from simple_gateway.proxy.transport import Network
from simple_gateway.proxy.upstream import UpstreamPool
from simple_gateway.proxy.watcher import DisconnectWatcher
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.cost import PriceTable
from simple_gateway.records.enrich import Enricher
from simple_gateway.records.journal import Journal, JournaledSink
from simple_gateway.records.model import Record
from simple_gateway.records.retention import Retention
from simple_gateway.records.scrub import SecretScrubber
from simple_gateway.records.spool import Spool
from simple_gateway.records.writer import RecordWriter
from simple_gateway.routing.config import parse_models
from simple_gateway.routing.frontdoor import FrontDoor
from simple_gateway.settings import Settings
from simple_gateway.store.base import Store
from simple_gateway.store.registry import open_store
from simple_gateway.translate.formats import register_builtin_formats

log = logging.getLogger(__name__)

_JOURNAL_REPLAY_TIMEOUT = 120.0


def current_gateway() -> Gateway:
    """The Gateway of the app handling the current Flask request."""
    from flask import current_app

    return current_app.extensions["simple_gateway"]  # type: ignore[no-any-return]


class Gateway:
    def __init__(self, settings: Settings, instance_id: str) -> None:
        self.settings = settings
        self.started_at = time.time()
        register_builtin_types()
        network = Network.from_environment(os.environ, settings.upstream_ca_bundle)
        providers = [build_provider(config, network) for config in settings.providers.values()]
        default = next(p for p in providers if p.name == settings.default_provider)
        self.router = Router(providers, default)
        self.pool = UpstreamPool(settings.upstream_connect_timeout, settings.upstream_read_timeout)
        self.watcher = DisconnectWatcher()
        self.live = LiveExchanges()
        self.metrics = GatewayMetrics() if settings.metrics_enabled else None
        self.blobs = BlobStore(settings.file_storage_path) if settings.records_enabled else None
        journaled = settings.records_enabled and settings.journal_enabled
        self.journal = Journal(Path(settings.spool_path)) if journaled else None
        self.writer = self._build_writer() if settings.records_enabled else None
        records = JournaledSink(self.journal, self.writer) if self.journal else self.writer
        # A provider may hold a record back for follow-up work (Replicate archives outputs).
        self.sink = (
            ProviderSink(records, self.router.providers, self.blobs)
            if records is not None
            else None
        )
        gate = KeyGate(GatewayKeys.parse(settings.gateway_api_keys))
        register_builtin_formats()
        self.front_door = FrontDoor(
            parse_models(
                settings.sections.get("models"),
                settings.sections.get("routing"),
                settings.providers,
            ),
            self.router.providers,
            settings.providers,
            default,
            keys=ProviderKeys(gate, self.router.providers),
            observer=self.metrics,
            inline_limit=settings.body_inline_limit,
        )
        self.guardrails = Guardrails.from_settings(
            settings, self.metrics.guardrail_run if self.metrics else None
        )
        self.forwarder = Forwarder(
            ForwarderConfig(
                instance_id=instance_id,
                max_request_body=settings.max_request_body,
                inline_limit=settings.body_inline_limit,
                access_log=settings.access_log,
                trusted_proxies=settings.trusted_proxies,
            ),
            self.pool,
            self.watcher,
            self.live,
            blobs=self.blobs,
            records=self.sink,
            observer=self.metrics,
            front_door=self.front_door,
            guardrails=self.guardrails,
            gate=gate,
        )
        self._started = False
        self.draining = False  # stopping: /ready says so to the load balancer
        self._start_lock = threading.Lock()
        self._drained = threading.Event()  # set by stop(): no deadline left to enforce

    def _build_writer(self) -> RecordWriter:
        settings = self.settings
        assert self.blobs is not None
        enrich = Enricher(
            self.blobs, PriceTable.load(settings.prices), inline_limit=settings.body_inline_limit
        )
        scrub = SecretScrubber(self.blobs)

        def prepare(record: Record) -> None:
            try:
                enrich(record)
            finally:
                scrub(record)

        def store() -> Store:
            return open_store(settings.database_url or None, settings.db_path)

        return RecordWriter(
            store,
            Spool(Path(settings.spool_path)),
            enrich=prepare,
            observer=self.metrics,
            queue_size=settings.writer_queue_size,
            batch_size=settings.writer_batch_size,
            flush_interval=settings.writer_flush_interval,
            maintenance=Retention(self.blobs, settings.retention_days, settings.retention_max_rows),
            busy=lambda: len(self.live) > 0,
            journal=self.journal,
        )

    @staticmethod
    def _replay_journals(journal: Journal, writer: RecordWriter) -> None:
        """Records of killed workers go to the writer, from a thread: the start never waits."""
        threading.Thread(
            target=journal.replay,
            args=(writer.submit, lambda: writer.flush(_JOURNAL_REPLAY_TIMEOUT)),
            name="journal-replay",
            daemon=True,
        ).start()

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Start the worker's threads; idempotent, safe from any thread."""
        with self._start_lock:
            if self._started:
                return
            self.watcher.start()
            if self.writer is not None:
                if self.journal is not None:
                    self.journal.open()
                self.writer.start()
                if self.journal is not None:
                    self._replay_journals(self.journal, self.writer)
            if self.guardrails is not None:
                self.guardrails.start()
            self._started = True

    def begin_shutdown(self, deadline: float) -> None:
        """Let in-flight exchanges run until `deadline` (monotonic), then interrupt them."""
        self.draining = True

        def interrupt() -> None:
            delay = deadline - time.monotonic()
            if delay > 0 and self._drained.wait(delay):
                return
            count = self.live.interrupt_all()
            if count:
                log.warning(
                    "interrupted %d exchanges still running at the shutdown deadline", count
                )

        threading.Thread(target=interrupt, name="shutdown-deadline", daemon=True).start()

    def stop(self, timeout: float) -> None:
        """Drain the writer (what it cannot write in time is spooled) and stop threads."""
        self._drained.set()
        self.live.interrupt_all()
        self.watcher.stop()
        if self.sink is not None:
            self.sink.close(timeout / 2)
        if self.guardrails is not None:
            self.guardrails.stop()
        if self.writer is not None:
            drained = self.writer.stop(timeout)
            if not drained:
                log.error("record writer did not drain in %.1fs; the rest is in the spool", timeout)
            if self.journal is not None:
                self.journal.close()
        self.pool.close()
