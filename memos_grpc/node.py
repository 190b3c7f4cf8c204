"""The node's composition root: opens the data directory's stores, wires every component to them, and closes cleanly.

It wires the store (spaces, cubes, search, payloads: memos_grpc/vault) and the components above it (governance,
interchange, scheduler, marketplace, models, witness) to one shared context, repairs derived indexes at start, and
runs the background thread that saves changed vector indexes. It lives outside the store's folder because it
knows every layer: the server holds one ``Node`` and nothing below imports it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from memos_grpc import reasons
from memos_grpc.embedding.embedder import Embedder, load_embedder
from memos_grpc.embedding.worker import EmbeddingWorker
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.governance.audit import AuditLog
from memos_grpc.governance.identity import Principals
from memos_grpc.interchange.exporter import Exporter
from memos_grpc.interchange.importer import Importer
from memos_grpc.interchange.signers import NODE_KEY_FILE, NODE_PRINCIPAL, Signers
from memos_grpc.interchange.trust_store import TrustStore
from memos_grpc.marketplace.follower import LogFollower
from memos_grpc.marketplace.held import LicenseBook
from memos_grpc.marketplace.licenses import Licenses
from memos_grpc.marketplace.listings import Listings
from memos_grpc.marketplace.node import LOG_KEY_FILE, MARKETPLACE_KEY_FILE, MarketplaceNode
from memos_grpc.marketplace.releases import Releases
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.scheduler.operations import Operations
from memos_grpc.scheduler.recall import Scheduler
from memos_grpc.scheduler.tokens import TokenCounter
from memos_grpc.scheduler.transform import Transformer
from memos_grpc.scheduler.usage import UsageRecorder
from memos_grpc.settings import THREAD_STOP_SECONDS, Settings
from memos_grpc.store.opening import open_store
from memos_grpc.store.server_keys import agree_on_keys
from memos_grpc.store.vectors import IndexParams
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.cubes import Cubes
from memos_grpc.vault.lifecycle import Lifecycle
from memos_grpc.vault.payloads import Payloads
from memos_grpc.vault.retention import Sweeper
from memos_grpc.vault.search import Search
from memos_grpc.vault.spaces import Spaces
from memos_grpc.witness.witness import KEY_FILE as WITNESS_KEY_FILE
from memos_grpc.witness.witness import Witness

if TYPE_CHECKING:
    from memos_grpc.models.host import ModelHost

log = logging.getLogger(__name__)


def _load_model(settings: Settings) -> ModelHost | None:
    """The model of ``model_dir``, or None without one; torch and transformers load only when it is set."""
    if not settings.model_dir:
        return None
    from memos_grpc.models.host import load_model_host

    log.info("loading model from %s", settings.model_dir)
    return load_model_host(settings.model_dir)


def _agree_on_keys(context: VaultContext) -> None:
    """Refuses to start with signing keys other than those the database's other servers sign with (KEYS_DIFFER).

    Loads (or, on the first server, creates) the keys this node's settings call for, as the components will.
    """
    settings = context.settings
    files = {"node": NODE_KEY_FILE}
    if settings.marketplace_enabled:
        files |= {"marketplace": MARKETPLACE_KEY_FILE, "log": LOG_KEY_FILE}
    if settings.witness_logs:
        files["witness"] = WITNESS_KEY_FILE
    keys = {name: SigningKey.load_or_create(settings.key_dir / file).public_key for name, file in files.items()}
    differing = context.database.write(lambda cursor: agree_on_keys(cursor, keys))
    if differing:
        context.store.close()
        context.embedder.close()
        raise FailedPreconditionError(
            f"this server's {', '.join(differing)} key(s) in {settings.key_dir} differ from those the other servers "
            "of its PostgreSQL database sign with: give every server the same key directory (setting keys_dir, "
            "docs/scaling.md)",
            reason=reasons.KEYS_DIFFER,
        )


class Node:
    """One memos-grpc node: everything stored under one data directory, and the components that serve it."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        started = time.monotonic()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # First: a bad model directory stops start-up before any store is opened.
        model = _load_model(settings)
        if embedder is None:
            log.info("loading embedder %s", settings.embedder)
            embedder = load_embedder(settings.embedder, settings.vector_dimension)
        worker = EmbeddingWorker(embedder, settings.embed_batch_size, settings.embed_timeout_seconds)
        params = IndexParams(
            dimension=embedder.dimension,
            m=settings.hnsw_m,
            ef_construction=settings.hnsw_ef_construction,
            ef_search=settings.hnsw_ef_search,
        )
        store, report = open_store(settings, params)
        self.context = VaultContext(settings=settings, store=store, embedder=worker)
        if store.follower is not None:
            # Before any component publishes a key: servers sharing the database must sign alike.
            _agree_on_keys(self.context)
        if settings.postgres_url:
            log.info("vectors are searched in PostgreSQL (pgvector): %d spaces, no index files", report.spaces)
        else:
            log.info(
                "vector indexes checked against DuckDB: %d spaces, %d vectors, %d added, %d removed, "
                "%d orphan index files dropped, %d stale vectors replaced",
                report.spaces,
                report.vectors,
                report.added,
                report.removed,
                report.dropped_indexes,
                report.replaced,
            )
        # Governance lives beside the vault: it shares the database and the writer.
        self.principals = Principals(self.context)
        self.audit = AuditLog(self.context)
        self.principals.bootstrap(settings.data_dir)
        self.spaces = Spaces(self.context)
        self.cubes = Cubes(self.context)
        self.search = Search(self.context)
        self.payloads = Payloads(self.context, self.cubes)
        self.lifecycle = Lifecycle(self.context, self.cubes)
        self.usage = UsageRecorder(self.context)
        self.scheduler = Scheduler(self.context, self.search, self.usage, TokenCounter(settings.recall_tokenizer))
        self.operations = Operations(self.context, self.cubes.sees)
        self.transformer = Transformer(self.context, self.cubes, self.payloads, self.operations, model)
        # The Memory Interchange Protocol: the node's keys, its trust root, bundles in and out.
        self.signers = Signers(settings.key_dir, self.principals)
        self.trust = TrustStore(self.context, self.signers.node, NODE_PRINCIPAL)
        # Witnessing other logs (a setting of its own, independent of the marketplace).
        self.witness = Witness(self.context)
        self.exporter = Exporter(self.context, self.signers)
        self.importer = Importer(self.context, self.cubes)
        self.sweeper = Sweeper(self.context)
        # The marketplace, when this node is one: its keys, its log and the publisher of witnessed checkpoints.
        self.marketplace = MarketplaceNode(self.context, settings) if settings.marketplace_enabled else None
        if self.marketplace is not None:
            # Published in its own trust root, where buyers copy them from (docs/marketplace.md).
            key = self.marketplace.marketplace_key
            self.trust.adopt_marketplace(
                TrustedKey(key.key_id, key.public_key, f"{self.marketplace.origin} marketplace"),
                self.marketplace.policy_text(),
                self.marketplace.origin,
            )
        self.listings = Listings(self.context)
        self.releases = Releases(self.context, self.principals, self.marketplace) if self.marketplace else None
        # One per node; revocations are decided in their write transactions, so servers sharing a database agree.
        self.licenses = (
            Licenses(self.context, self.marketplace, self.releases)
            if self.marketplace is not None and self.releases is not None
            else None
        )
        # The buyer's side: the licenses this node holds, the gate every metered use passes, the log it follows.
        self.license_book = LicenseBook(self.context, self.trust, self.principals)
        self.context.licenses = self.license_book
        self.follower = LogFollower(self.context, self.license_book, self.trust)
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="index-flusher", daemon=True)
        self._flusher.start()
        if store.follower is not None:
            # Every component that keeps records in memory has subscribed by now.
            store.follower.start()
        log.info(
            "vault open at %s in %.1fs (embedder %s, dimension %d)",
            settings.data_dir,
            time.monotonic() - started,
            worker.fingerprint or "none",
            worker.dimension,
        )

    @property
    def diverged(self) -> str:
        """Why this server must be restarted before it serves again ("" when it need not): on PostgreSQL, the
        database's change log no longer holds changes this server applied (a failover lost them)."""
        follower = self.context.store.follower
        return follower.diverged if follower is not None else ""

    def when_diverged(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` once the server is ``diverged`` (never on the embedded backend)."""
        if self.context.store.follower is not None:
            self.context.store.follower.when_diverged(callback)

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.context.settings.index_flush_seconds):
            try:
                self.context.store.flush()
            except OSError:
                log.exception("saving vector indexes failed; they will be rebuilt from DuckDB if needed")

    def close(self) -> None:
        """Finishes queued writes, saves indexes, and closes the database."""
        self.operations.close()
        if self.marketplace is not None:
            self.marketplace.close()
        self.follower.close()
        self.license_book.close()
        self._stop.set()
        self._flusher.join(timeout=THREAD_STOP_SECONDS)
        self.sweeper.stop()
        self.usage.close()
        self.context.store.close()
        self.context.embedder.close()
        log.info("vault closed; indexes saved")
