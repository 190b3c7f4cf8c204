"""The one settings object of the server, loaded once and passed in.

Values come, lowest precedence first, from the defaults below, a TOML config
file, ``MEMOS_<FIELD>`` environment variables, and command-line overrides.
Every field is documented in docs/configuration.md (a test keeps the two in
step).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.transparency.log_keys import witnessed_logs
from memos_grpc.transparency.note import valid_key_name

ENV_PREFIX = "MEMOS_"
MiB = 1024 * 1024

#: Longest a component's ``close`` waits for its background thread (index flusher, usage and license flushers,
#: operations worker, checkpoint publisher, log follower) to finish its current step. Those threads are daemons:
#: one stuck past this (a peer call, a long training step) is left behind, so shutdown stays bounded and the
#: database still closes, instead of hanging on it.
THREAD_STOP_SECONDS = 30.0
#: Highest LoRA rank a training request may ask for, and ``lora_rank`` may default to (docs/api.md,
#: INVALID_TRAINING). A rank-r adapter on a d x k weight adds r * (d + k) parameters, so its blob and its training
#: memory grow with r; a few hundred already rivals the weights it adapts on the small models a server runs, so
#: more is refused as a mistake, not started.
MAX_LORA_RANK = 256
#: DuckDB's own checkpoint threshold (16 MB) checkpoints every few batches of a bulk ingest
#: (``checkpoint_threshold_mb``).
DEFAULT_CHECKPOINT_MB = 256

#: Field metadata key of a setting that must be greater than zero: the mark sits on the field itself, so a new
#: limit cannot be declared without deciding it, and ``Settings.validate`` reads the marks.
POSITIVE = "positive"
#: Field metadata key of a setting that may be zero but not below (0 usually turns something off).
NOT_NEGATIVE = "not_negative"

_Default = TypeVar("_Default", int, float)


def positive(default: _Default) -> _Default:
    """The default of a setting that must be greater than zero (0 or less is refused at load).

    At run time this is the dataclass field carrying the mark; it is typed as the default so the field's
    annotation stays the plain ``int`` or ``float`` that ``_convert`` reads.
    """
    return dataclasses.field(default=default, metadata={POSITIVE: True})


def not_negative(default: _Default) -> _Default:
    """The default of a setting that must be zero or more (below zero is refused at load); typed as ``positive``."""
    return dataclasses.field(default=default, metadata={NOT_NEGATIVE: True})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every knob of the server. Limits are named here, never literals in code."""

    data_dir: Path = Path("data")
    #: The directory of the server's signing keys (node, marketplace, log, witness, principals' kept keys); empty:
    #: ``data_dir/keys``. Servers sharing a PostgreSQL database must share it (docs/scaling.md).
    keys_dir: str = ""
    #: The PostgreSQL database to keep the vault's records in (a libpq URL or key=value string, e.g.
    #: ``postgresql://memos@db.internal/memos``; a password is better in ``PGPASSWORD`` or ``~/.pgpass``). Empty:
    #: the embedded backend, DuckDB under ``data_dir`` (docs/scaling.md).
    postgres_url: str = ""
    #: Connections each server keeps to PostgreSQL for reads (its writer holds one more).
    postgres_pool_size: int = positive(8)
    #: Seconds a server waits at most before reading the change log again when no notification woke it: the
    #: bound on how stale its memory of other servers' writes gets if a notification is lost (docs/scaling.md).
    change_poll_seconds: float = positive(1.0)
    listen: str = "127.0.0.1:50051"
    log_level: str = "INFO"
    #: File the access log appends to: one JSON line per call (method, status code, duration, peer, user agent;
    #: no request data). Empty: no access log.
    access_log_file: str = ""
    #: Threads serving RPCs.
    workers: int = positive(16)
    #: Seconds SIGTERM waits for in-flight calls before cancelling them.
    shutdown_grace_seconds: float = 10.0

    #: Let calls without a credential through, as the non-admin principal "anonymous".
    allow_anonymous: bool = False
    #: PEM certificate chain and private key: when both are set the server speaks TLS only.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: PEM CA bundle for client certificates: when set, clients must present one (mTLS).
    tls_client_ca_file: str = ""

    max_receive_message_bytes: int = positive(16 * MiB)
    max_send_message_bytes: int = positive(16 * MiB)
    #: Longest plaintext payload, in UTF-8 bytes.
    max_text_bytes: int = positive(64 * 1024)
    max_batch_size: int = positive(1000)
    #: Payload streams (WritePayload, ReadPayload) one principal may have open at once.
    max_streams_per_principal: int = positive(8)
    default_page_size: int = positive(50)
    max_page_size: int = positive(1000)
    default_top_k: int = positive(10)
    max_top_k: int = positive(1000)
    max_filter_length: int = 4096
    #: Largest payload blob accepted by WritePayload.
    max_payload_bytes: int = positive(4096 * MiB)
    #: Size of the chunks ReadPayload streams.
    payload_chunk_bytes: int = positive(1 * MiB)

    #: "all-MiniLM-L6-v2" (the packaged default) or "none" (clients send vectors).
    embedder: str = "all-MiniLM-L6-v2"
    #: Vector dimension when embedder is "none".
    vector_dimension: int = positive(384)
    embed_batch_size: int = positive(64)
    #: Longest a call waits for the embedder before failing UNAVAILABLE.
    embed_timeout_seconds: float = 60.0

    hnsw_m: int = positive(16)
    hnsw_ef_construction: int = positive(200)
    hnsw_ef_search: int = positive(64)
    #: A filtered search whose filter matches at most this many cubes is exact.
    exact_search_max_candidates: int = 4096
    #: MiB of contiguous copies of recently scored filters' vectors, shared by every space; a filter scored
    #: again reads one block instead of gathering scattered rows (about ten times faster). 0 keeps none.
    exact_scoring_cache_mb: int = not_negative(256)
    #: Embedded backend: seconds within which a new or changed cube becomes searchable lexically (BM25); dense search
    #: sees it at once. On PostgreSQL a cube's BM25 document is searchable from its commit.
    lexical_refresh_seconds: float = positive(0.5)
    #: Share of the dense score in hybrid search (0 to 1; the lexical score has the rest). Each list's scores
    #: are divided by the list's best before they are added.
    hybrid_dense_weight: float = 0.5

    #: Candidates a recall ranks (the search's top k) before fitting the budget.
    recall_max_candidates: int = positive(100)
    #: Weights of a recall item's score parts (docs/scheduler.md).
    recall_weight_relevance: float = 0.7
    recall_weight_priority: float = 0.1
    recall_weight_recency: float = 0.1
    recall_weight_usage: float = 0.1
    #: Days after which a memory's recency part has halved.
    recall_half_life_days: float = positive(30.0)
    #: tokenizer.json that counts a recall's tokens (default: the packaged all-MiniLM-L6-v2 tokenizer).
    recall_tokenizer: str = ""
    #: Seconds between writes of recall usage (counts are batched, not written per call).
    usage_flush_seconds: float = positive(1.0)
    #: Seconds between saves of changed vector indexes (they are rebuilt from DuckDB after a crash).
    index_flush_seconds: float = 300.0

    #: Seconds between retention sweeps, which turn expired cubes into tombstones, remove tombstones past
    #: ``expired_retention_seconds``, and purge unreferenced blobs.
    sweep_interval_seconds: float = positive(60.0)
    #: How long after its expire time an expired cube's tombstone (state EXPIRED, no content) stays listed
    #: before the sweeper removes it too; 0 removes it in the sweep that empties it.
    expired_retention_seconds: float = not_negative(30 * 86400.0)
    #: How long an upload lets its uploader name the blob in its space; unreferenced blobs go only after it.
    blob_grace_seconds: float = 3600.0

    #: Most write operations committed together in one DuckDB transaction.
    write_group_max: int = positive(256)
    #: Megabytes of DuckDB write-ahead log after which a commit also checkpoints the database file. Each
    #: checkpoint rewrites the tables' changed parts and their key indexes, so at DuckDB's 16 MB a bulk ingest
    #: checkpointed every few batches; a larger log costs replay time at start-up after a crash (about 1 s for
    #: 230 MB here) and nothing in durability: a commit is durable in the log either way.
    checkpoint_threshold_mb: int = positive(DEFAULT_CHECKPOINT_MB)

    #: Name this server gives itself in the bundles it signs (default: the host name).
    node_name: str = ""
    #: Days the first trust root (created at first start) stays valid; renew it with UpdateTrustRoot.
    trust_root_days: int = positive(365)
    #: Size of the chunks ExportBundle streams.
    bundle_chunk_bytes: int = positive(1 * MiB)
    #: Largest bundle Import and Verify read, all entries together.
    bundle_max_bytes: int = positive(64 * 1024 * MiB)
    #: Most entries in one bundle (the marker and the envelope included).
    bundle_max_entries: int = positive(250_000)
    #: Largest signed envelope (it lists every entry, so it grows with the bundle).
    bundle_max_envelope_bytes: int = positive(64 * MiB)
    #: Largest cube entry (one serialized MemCube, read whole).
    bundle_max_cube_bytes: int = positive(1 * MiB)
    #: Most cubes one export may select, and one import may carry (an import holds them until it commits).
    bundle_max_cubes: int = positive(200_000)
    #: PEM CA bundle that ImportFromPeer uses to check a peer's TLS certificate when the call gives none.
    peer_ca_file: str = ""
    #: Let ImportFromPeer speak plaintext to a peer when the call asks (never do this across a network).
    allow_plaintext_peers: bool = False
    #: Longest an ImportFromPeer call waits for the peer's whole bundle.
    peer_timeout_seconds: float = positive(600.0)

    #: Logs this node witnesses (C2SP tlog-witness over WitnessService): comma-separated vkeys of the logs'
    #: checkpoint keys, ``<origin>+<hex key id>+<base64 key>``. Empty: it witnesses none and has no witness key.
    witness_logs: str = ""
    #: Key name of this node's cosignatures (part of its witness vkey: changing it changes the vkey).
    witness_name: str = "memos-grpc-witness"

    #: Local Hugging Face directory of the causal language model that transforms run on (safetensors
    #: weights; needs the models extra). Empty: no model, and TransformCube answers FAILED_PRECONDITION.
    model_dir: str = ""
    #: Defaults of a LoRA training run (TransformCube to parametric), when the request leaves them zero.
    lora_steps: int = positive(50)
    lora_learning_rate: float = positive(1e-3)
    lora_rank: int = positive(8)
    #: Most training steps, and most source cubes, one TransformCube may ask for.
    max_lora_steps: int = positive(2000)
    max_transform_cubes: int = positive(256)
    #: Operations that may wait for the model at once; more are refused RESOURCE_EXHAUSTED.
    max_queued_operations: int = positive(64)
    #: Longest CancelOperation waits for a running operation to stop before it answers.
    operation_cancel_wait_seconds: float = positive(10.0)
    #: Days a finished operation stays readable (dropped at the next start after that).
    operation_retention_days: float = positive(30.0)
    #: On a database other servers share: least seconds between two writes of a running operation's progress to
    #: its row, where the other servers read and watch it (0: every step).
    operation_progress_seconds: float = not_negative(1.0)
    #: On a database other servers share: how often one of them marks FAILED the unfinished operations of a
    #: server that stopped (a server does so for every stopped server when it starts, too).
    operation_takeover_seconds: float = positive(30.0)

    #: Make this node a marketplace: listings, releases, licenses and their transparency log
    #: (docs/marketplace.md). Its marketplace and log keys are created at first start.
    marketplace_enabled: bool = False
    #: The log's origin line, its name in every checkpoint. Empty: ``memos-grpc.local/log/<16 hex of the
    #: log key id>``, unique to the log key.
    marketplace_log_origin: str = ""
    #: Witnesses asked to cosign each checkpoint, comma-separated ``<witness vkey>@<host:port>`` (the vkey a
    #: witness node logs at start). Calls use TLS (peer_ca_file) unless allow_plaintext_peers is set.
    marketplace_witnesses: str = ""
    #: How many of those witnesses must cosign a checkpoint before it is published (0: all of them).
    marketplace_witness_quorum: int = not_negative(0)
    #: Longest the publisher waits for one witness to answer.
    marketplace_witness_timeout_seconds: float = positive(10.0)
    #: Shortest time between two checkpoints the publisher signs: appends in between share one checkpoint.
    checkpoint_interval_seconds: float = positive(0.05)
    #: Longest a call that returns a proof (AcquireLicense, PublishRelease) waits for a published checkpoint.
    checkpoint_wait_seconds: float = positive(30.0)
    #: Age of the published checkpoint's quorum cosignatures (by this node's clock) past which the publisher
    #: has its witnesses cosign the same checkpoint again: buyers need a fresh one even while the log is idle.
    checkpoint_refresh_seconds: float = positive(300.0)

    #: The marketplace this node buys from, ``host:port`` of its TransparencyLogService: the node follows its log
    #: (every marketplace_sync_seconds, and on SyncMarketplaceLog) to learn of revocations and yanks and to keep
    #: its licensed cubes fresh. TLS (peer_ca_file) unless allow_plaintext_peers is set. Empty: it follows none.
    marketplace_follow: str = ""
    #: A file holding the bearer token the node presents to that marketplace (keep it mode 0600).
    marketplace_follow_token_file: str = ""
    #: How often the node follows the marketplace log.
    marketplace_sync_seconds: float = positive(60.0)
    #: How often a buyer's node writes the uses of licensed cubes that no count limit depends on (with their audit
    #: events); a use a limit depends on is written before its answer leaves.
    license_flush_seconds: float = positive(1.0)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def positive_names(cls) -> list[str]:
        """The settings declared with ``positive(...)``, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get(POSITIVE, False)]

    @classmethod
    def not_negative_names(cls) -> list[str]:
        """The settings declared with ``not_negative(...)``, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get(NOT_NEGATIVE, False)]

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Builds settings from file, environment and overrides (in that order)."""
        values: dict[str, Any] = {}
        if config_file is not None:
            try:
                values.update(tomllib.loads(Path(config_file).read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise InvalidArgumentError(
                    f"cannot read config file {config_file}: {exc}", reason=reasons.INVALID_CONFIG
                ) from exc
        environ = os.environ if environ is None else environ
        for name in cls.field_names():
            key = ENV_PREFIX + name.upper()
            if key in environ:
                values[name] = environ[key]
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InvalidArgumentError(
                f"unknown setting(s): {', '.join(unknown)}; see docs/configuration.md",
                reason=reasons.INVALID_CONFIG,
            )
        converted = {name: _convert(name, known[name].type, value) for name, value in values.items()}
        settings = cls(**converted)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in self.positive_names():
            if getattr(self, name) <= 0:
                raise InvalidArgumentError(f"setting {name} must be positive", reason=reasons.INVALID_CONFIG)
        for name in self.not_negative_names():
            if getattr(self, name) < 0:
                raise InvalidArgumentError(f"setting {name} must not be negative", reason=reasons.INVALID_CONFIG)
        if self.lora_rank > MAX_LORA_RANK:
            raise InvalidArgumentError(
                f"setting lora_rank must be at most {MAX_LORA_RANK}, not {self.lora_rank}",
                reason=reasons.INVALID_CONFIG,
            )
        if not 0.0 <= self.hybrid_dense_weight <= 1.0:
            raise InvalidArgumentError(
                f"setting hybrid_dense_weight must be between 0 and 1, not {self.hybrid_dense_weight}",
                reason=reasons.INVALID_CONFIG,
            )
        if self.embedder not in ("all-MiniLM-L6-v2", "none"):
            raise InvalidArgumentError(
                f"setting embedder must be 'all-MiniLM-L6-v2' or 'none', not {self.embedder!r}",
                reason=reasons.INVALID_CONFIG,
            )
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise InvalidArgumentError(
                "settings tls_cert_file and tls_key_file go together: set both or neither",
                reason=reasons.INVALID_CONFIG,
            )
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise InvalidArgumentError(
                "setting tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file", reason=reasons.INVALID_CONFIG
            )
        if self.bundle_chunk_bytes > self.max_send_message_bytes // 2:
            raise InvalidArgumentError(
                "setting bundle_chunk_bytes must be at most half of max_send_message_bytes",
                reason=reasons.INVALID_CONFIG,
            )
        if self.payload_chunk_bytes > self.max_send_message_bytes // 2:
            raise InvalidArgumentError(
                "setting payload_chunk_bytes must be at most half of max_send_message_bytes",
                reason=reasons.INVALID_CONFIG,
            )
        witnessed_logs(self.witness_logs)  # raises INVALID_CONFIG naming the setting
        if not valid_key_name(self.witness_name):
            raise InvalidArgumentError(
                f"setting witness_name {self.witness_name!r} is not a key name: 1 to 255 bytes, no space, no '+'",
                reason=reasons.INVALID_CONFIG,
            )

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "vault.duckdb"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def key_dir(self) -> Path:
        return Path(self.keys_dir) if self.keys_dir else self.data_dir / "keys"


def _convert(name: str, kind: Any, value: Any) -> Any:
    kind = {"Path": Path, "str": str, "int": int, "float": float, "bool": bool}.get(str(kind), kind)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{value!r} is not a boolean (true or false)")
        if kind is Path:
            return Path(value)
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"setting {name}: {exc}", reason=reasons.INVALID_CONFIG) from exc
    raise InvalidArgumentError(f"setting {name}: unsupported value {value!r}", reason=reasons.INVALID_CONFIG)
