"""Settings, read from the environment with the ``AIWEB_`` prefix.

Zero configuration runs: everything lives under ``AIWEB_HOME`` (default
``~/.local/share/aiweb``): the SQLite database ``aiweb.db``, the artifact directory
``artifacts/`` and the dataset cache ``datasets/``. Nested groups use ``__``, e.g.
``AIWEB_SERVING__MAX_INPUTS=64``.

Nothing here is built at import time: call :func:`get_settings` or construct
:class:`Settings` and pass it on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "aiweb"


class ServingSettings(BaseModel):
    """Limits and batching of the predict path."""

    max_inputs: int = Field(256, ge=1, description="Most texts in one predict request.")
    max_text_chars: int = Field(10_000, ge=1, description="Longest text accepted, in characters.")
    max_batch_size: int = Field(64, ge=1, description="Most texts run in one model call.")
    max_wait_ms: float = Field(
        1.0, ge=0, description="How long a batch under load waits for more requests."
    )
    max_queue: int = Field(2048, ge=1, description="Requests waiting per model version before 503.")
    alias_refresh_s: float = Field(
        2.0, gt=0, description="How often a server re-reads aliases moved by other processes."
    )
    keep_versions: int = Field(
        4, ge=0, description="Loaded versions kept in memory beyond those an alias points at."
    )
    runtime: Literal["auto", "sklearn", "onnx"] = Field(
        "auto",
        description="Runtime of text classifiers: 'auto' serves a version with onnxruntime for "
        "small batches when its ONNX export agreed with scikit-learn at training (else "
        "scikit-learn); 'sklearn' always uses scikit-learn; 'onnx' uses onnxruntime for every "
        "batch of a version that has an agreeing export.",
    )
    onnx_max_batch: int = Field(
        1,
        ge=1,
        description="'auto' runtime: the largest model call given to onnxruntime; bigger "
        "batches go to scikit-learn, which is faster on them (see docs/benchmarks.md).",
    )
    balance_connections: bool = Field(
        True,
        description="With several workers, a worker holding more than its share of the open "
        "connections answers with 'Connection: close' so that the client reconnects to a "
        "less loaded worker (keep-alive clients otherwise pile onto one worker).",
    )
    gc_freeze: bool = Field(
        True,
        description="After models load, freeze the objects alive out of the cyclic garbage "
        "collector's scans and collect young objects less often (cuts p99 latency).",
    )
    gc_gen0_threshold: int = Field(
        50_000, ge=100, description="Allocations between young-generation collections."
    )
    malloc_arenas: int = Field(
        2,
        ge=0,
        le=64,
        description="glibc malloc arenas per serving process (mallopt M_ARENA_MAX); 0 leaves "
        "glibc's default (8 per core). Requests run in a pool of threads, and with one arena "
        "per thread a worker's RSS kept creeping ~5 MB/min under a 10-minute soak; with 2 it "
        "stays flat (docs/benchmarks.md).",
    )
    blas_threads: int = Field(
        1,
        ge=0,
        description="BLAS (OpenBLAS/MKL) threads per serving process; 0 leaves the library's "
        "default (one per core). Requests are served in parallel by workers, and the small "
        "matrix-vector products of a request run several times slower when BLAS wakes "
        "threads for them (docs/benchmarks.md).",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Request line plus headers of one request, bytes (default 65536 = 64 KB); "
        "a request whose head is larger is answered 431 and its connection closed, before "
        "more than this is held in memory.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a whole request line and headers (default "
        "10), counted from connecting, or from the first byte of the next request on a "
        "kept-alive connection; then 408 and the connection is closed.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest pause, in seconds, between two parts of a request body while the "
        "server is ready to read (default 30); then 408 and the connection is closed.",
    )
    keep_alive_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Seconds an idle kept-alive connection stays open after a response "
        "(default 5).",
    )


class CacheSettings(BaseModel):
    """The prediction cache: scores by (model version, input text).

    In process memory (an LRU per worker) unless ``AIWEB_REDIS_URL`` is set, in which case
    all workers and servers share it in Redis.
    """

    enabled: bool = Field(True, description="Cache prediction scores.")
    ttl_s: float = Field(3600.0, gt=0, description="How long a cached score is served, seconds.")
    max_entries: int = Field(
        100_000, ge=1, description="In-process cache: most texts kept per worker (LRU)."
    )
    max_text_chars: int = Field(
        2_000, ge=0, description="Longer texts are not cached (rarely repeated, large to keep)."
    )


class PredictionLogSettings(BaseModel):
    """Batched prediction logging, off the request path."""

    flush_interval_s: float = Field(1.0, gt=0)
    max_batch_rows: int = Field(1000, ge=1)
    max_queue_rows: int = Field(200_000, ge=1)
    feedback_max_waiters: int = Field(
        64,
        ge=0,
        le=10_000,
        description="Feedback requests per worker that may wait at once for their "
        "prediction to be logged; more are answered 503 with Retry-After at once.",
    )


class AuthSettings(BaseModel):
    """API keys. Disabling auth is refused unless the server binds to loopback only."""

    enabled: bool = Field(True, description="Require an API key on every /v1 route.")
    metrics_public_on_loopback: bool = Field(
        True, description="/metrics answers loopback clients without a key; others need admin."
    )


_SHARED_BY = (
    " Without AIWEB_REDIS_URL the workers of one `aiweb serve --workers N` share this budget "
    "(a table in shared memory), but separate servers or replicas each count on their own, so "
    "a client spread over K of them may get up to K times the budget; with Redis every worker "
    "and replica shares one budget."
)


class RateLimitSettings(BaseModel):
    """Requests per key (or per client address without a key), per scope.

    Values use the ``limits`` library's notation, e.g. ``"600/minute"``, ``"10/second"``.
    Each budget is a moving window. Without ``AIWEB_REDIS_URL`` the workers of one
    ``aiweb serve --workers N`` share the counts through a memory-mapped table, and each
    other server process (another host, another ``aiweb serve``, a process manager's
    workers) counts on its own. Set ``AIWEB_REDIS_URL`` for one budget shared by every
    worker and replica.
    """

    enabled: bool = Field(True, description="Enforce the budgets below (default true).")
    predict: str = Field(
        "300/second",
        description="Budget of a key with scope predict (default 300/second)." + _SHARED_BY,
    )
    train: str = Field(
        "600/minute",
        description="Budget of a key with scope train (default 600/minute)." + _SHARED_BY,
    )
    admin: str = Field(
        "300/minute",
        description="Budget of a key with scope admin (default 300/minute)." + _SHARED_BY,
    )
    anonymous: str = Field(
        "60/minute",
        description="Budget of a client address without a valid key (default 60/minute)."
        + _SHARED_BY,
    )
    chat: str = Field(
        "30/minute",
        description="Budget of one client address using a publishable chat key, per key "
        "(default 30/minute): every visitor of a site shares its key." + _SHARED_BY,
    )
    conversation: str = Field(
        "20/minute",
        description="Budget of one conversation's messages through a publishable chat key "
        "(default 20/minute)." + _SHARED_BY,
    )


class LimitSettings(BaseModel):
    """Bounds on what a client may send. Each is stated in the error it causes."""

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Request body, bytes.")
    max_json_depth: int = Field(32, ge=2, description="Nesting of JSON arrays/objects.")
    max_upload_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="Uploaded file.")
    max_upload_rows: int = Field(2_000_000, ge=1, description="Rows in an uploaded file.")
    max_document_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Uploaded document (PDF, DOCX, text), bytes."
    )
    max_document_pages: int = Field(50, ge=1, description="Pages of an uploaded document.")
    max_document_chars: int = Field(
        2_000_000, ge=1000, description="Characters of text extracted from one document."
    )
    max_image_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="Uploaded image (JPEG, PNG, WebP), bytes; a raw image body too.",
    )
    max_image_pixels: int = Field(
        40_000_000,
        ge=1,
        description="Pixels (width x height) an image's header may declare; checked before "
        "it is decoded (decompression bombs).",
    )


class JobSettings(BaseModel):
    """Background jobs: the embedded runner inside ``aiweb serve`` and Celery workers."""

    concurrency: int = Field(
        1, ge=0, description="Jobs one embedded runner (one serve worker) runs at once; 0 = none."
    )
    poll_interval_s: float = Field(
        1.0, gt=0, description="How often the embedded runner looks for pending jobs."
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts per job (worker deaths and transient errors) before failed."
    )
    lease_s: float = Field(
        60.0,
        gt=0,
        description="A running job whose runner has not sent a heartbeat for this long is "
        "considered dead and is run again.",
    )
    retry_backoff_s: float = Field(
        5.0, ge=0, description="First retry delay after a transient error; doubles per attempt."
    )
    retry_backoff_max_s: float = Field(300.0, ge=0, description="Longest retry delay.")
    batch_chunk_rows: int = Field(
        4096, ge=1, description="Rows a batch-prediction job reads and scores at a time."
    )
    scheduler_interval_s: float = Field(
        15.0, gt=0, description="How often schedules are checked and lost jobs swept."
    )
    queue: str = Field(
        "aiweb",
        min_length=1,
        max_length=128,
        description="Celery queue the API publishes to and workers consume.",
    )
    broker_visibility_timeout_s: int = Field(
        3600,
        ge=1,
        description="Redis broker only: an unacknowledged task is redelivered after this long.",
    )


class AlertSettings(BaseModel):
    """Alerts posted to a webhook (drift, rollout rollbacks), and the periodic drift
    check that raises the drift alerts."""

    max_attempts: int = Field(4, ge=1, le=20, description="Tries per alert before giving up.")
    retry_backoff_s: float = Field(
        1.0, ge=0, description="Wait before the second try; doubles after each failure."
    )
    timeout_s: float = Field(5.0, gt=0, description="Per-request timeout of the webhook call.")
    webhook_secret: SecretStr | None = Field(
        None,
        description="Signs every alert posted to AIWEB_ALERT_WEBHOOK_URL (drift, rollback) "
        "as the webhooks are: header Aiweb-Signature: t=<unix>,v1=<HMAC-SHA256 hex> "
        "(docs/webhooks.md); unset: alerts are not signed.",
    )
    drift_check_interval_s: float = Field(
        300.0,
        gt=0,
        description="How often the scheduler checks the production versions for drift.",
    )
    drift_window: str = Field("24h", description="Window of the periodic drift check.")


class WebhookSettings(BaseModel):
    """Signed event deliveries to the webhooks of ``PUT /v1/webhooks/{name}``."""

    max_attempts: int = Field(
        6, ge=1, le=20, description="Tries per delivery before it is recorded as failed."
    )
    retry_backoff_s: float = Field(
        10.0, ge=0, description="Wait before the second try; doubles after each failure."
    )
    retry_backoff_max_s: float = Field(
        3600.0, ge=0, description="Longest wait between two tries of a delivery."
    )
    timeout_s: float = Field(5.0, gt=0, description="Per-request timeout of a delivery.")
    batch_size: int = Field(
        50, ge=1, le=10_000, description="Most deliveries sent by one scheduler tick."
    )


class EmbeddingSettings(BaseModel):
    """Sentence embeddings (``POST /v1/models/{name}/embed``, collections, minilm features)."""

    threads: int = Field(
        0,
        ge=0,
        description="onnxruntime intra-op threads per embedder (0: every core; under "
        "`aiweb serve --workers N`, N > 1, each worker's share: cores // N).",
    )
    max_inputs: int = Field(256, ge=1, description="Most texts in one embed request.")
    max_batch_size: int = Field(
        32, ge=1, description="Most texts in one model call when requests are micro-batched."
    )
    max_wait_ms: float = Field(
        2.0, ge=0, description="How long a batch under load waits for more embed requests."
    )
    max_queue: int = Field(2048, ge=1, description="Embed requests waiting before 503.")


class SearchSettings(BaseModel):
    """Search collections (``/v1/collections``): vector indexes, limits, ranking."""

    vector_index: Literal["auto", "embedded", "pgvector"] = Field(
        "auto",
        description="Vector index of new collections: 'embedded' (in process: exact search, "
        "then usearch HNSW from ann_threshold documents, saved under <home>/search); "
        "'pgvector' (PostgreSQL with the vector extension); 'auto': pgvector when the "
        "database has it, else embedded.",
    )
    ann_threshold: int = Field(
        20_000, ge=1, description="Documents from which an embedded index adds an HNSW graph."
    )
    ann_connectivity: int = Field(16, ge=2, le=128, description="HNSW M (edges per node).")
    ann_expansion_add: int = Field(
        128, ge=8, le=4096, description="HNSW efConstruction (build quality)."
    )
    ann_expansion_search: int = Field(
        64, ge=8, le=4096, description="HNSW ef at search time (recall against latency)."
    )
    ann_refresh_dirty: int = Field(
        2_000,
        ge=1,
        description="Documents written since an HNSW graph was built that make it refresh "
        "(until then they are searched exactly).",
    )
    ann_build_threads: int = Field(
        1, ge=1, description="Threads that build an HNSW graph (in the background)."
    )
    pgvector_m: int = Field(16, ge=2, le=100, description="pgvector HNSW m.")
    pgvector_ef_construction: int = Field(
        64, ge=4, le=1000, description="pgvector HNSW ef_construction."
    )
    pgvector_ef_search: int = Field(
        64, ge=1, le=1000, description="pgvector hnsw.ef_search (at least top_k)."
    )
    upkeep_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often a server process catches its embedded indexes up with writes "
        "of other processes and builds or refreshes HNSW graphs (in the background).",
    )
    max_documents: int = Field(10_000, ge=1, description="Most documents in one POST …/documents.")
    sync_max_documents: int = Field(
        128,
        ge=0,
        description="Larger document batches are embedded by a background job (202).",
    )
    max_document_chars: int = Field(
        100_000, ge=1, description="Longest document text, in characters."
    )
    max_metadata_bytes: int = Field(
        16_384, ge=2, description="Largest metadata object of a document, as JSON bytes."
    )
    max_top_k: int = Field(100, ge=1, le=10_000, description="Most hits one search returns.")
    hybrid_candidates: int = Field(
        50, ge=1, description="Hits taken from each of vector and keyword search to fuse."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant k.")


class DashboardSettings(BaseModel):
    """The web dashboard at ``/``."""

    enabled: bool = Field(True, description="Serve the dashboard at / (the API is unaffected).")
    session_max_age_s: int = Field(
        12 * 3600, ge=60, le=30 * 24 * 3600, description="A login lasts this long, seconds."
    )
    login_free_failures_per_account: int = Field(
        5,
        ge=1,
        le=1000,
        description="Consecutive failed logins of one dashboard user before each further "
        "failure delays the account's next attempt; count, default 5.",
    )
    login_free_failures_per_address: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Consecutive failed logins from one client address before each further "
        "failure delays that address's next attempt; count, default 20.",
    )
    login_base_delay_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Delay after the first failure beyond the free ones, doubling with each "
        "further failure; seconds, default 1.",
    )
    login_max_delay_s: float = Field(
        900.0,
        gt=0,
        le=24 * 3600,
        description="Longest delay between two checked login attempts of a throttled "
        "account or address; seconds, default 900 (15 min).",
    )
    login_failure_memory_s: int = Field(
        3600,
        ge=1,
        le=30 * 24 * 3600,
        description="Failed logins are forgotten this long after an account's or address's "
        "last failure; seconds, default 3600.",
    )


class DatabaseSettings(BaseModel):
    """The database connection pool (``AIWEB_DATABASE__*``; the URL is ``AIWEB_DATABASE_URL``).

    Applied to PostgreSQL. SQLite keeps SQLAlchemy's own pool for it (one connection per
    thread on a file, no overflow or wait), so these do not apply there.
    """

    pool_size: int = Field(
        5,
        ge=1,
        le=1000,
        description="Connections kept open per process (PostgreSQL); default 5.",
    )
    max_overflow: int = Field(
        10,
        ge=0,
        le=1000,
        description="Connections opened beyond pool_size under load and closed when "
        "returned (PostgreSQL); default 10.",
    )
    pool_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds to wait for a free connection before an error (PostgreSQL); "
        "default 30.",
    )


class RetentionSettings(BaseModel):
    """How long logged rows are kept (``AIWEB_RETENTION__*``); ``None`` keeps them for ever.

    Older rows are deleted by the scheduler tick (``aiweb scheduler``, or the embedded
    runner of ``aiweb serve``) in small batches, one short transaction each.
    """

    predictions_days: float | None = Field(
        90,
        gt=0,
        description="Days a prediction log row is kept; default 90 (drift and "
        "evaluation windows are days to weeks; the log grows with every prediction).",
    )
    feedback_days: float | None = Field(
        365,
        gt=0,
        description="Days a feedback row is kept; default 365 (rare, small, and the "
        "labelled examples future training needs).",
    )
    audit_days: float | None = Field(
        None, gt=0, description="Days an audit event is kept; default none (kept for ever)."
    )
    conversations_days: float | None = Field(
        90,
        gt=0,
        description="Days an assistant's conversation is kept after its last message, "
        "with its messages; default 90 (what visitors wrote is personal data).",
    )
    interval_s: float = Field(
        3600.0, gt=0, description="Seconds between pruning rounds (per process); default 3600."
    )
    batch_rows: int = Field(
        5000, ge=1, le=100_000, description="Rows deleted per transaction; default 5000."
    )

    @field_validator(
        "predictions_days", "feedback_days", "audit_days", "conversations_days", mode="before"
    )
    @classmethod
    def _keep(cls, value: Any) -> Any:
        """``keep`` (or ``none``, ``null``, empty) in the environment keeps rows for ever."""
        if isinstance(value, str) and value.strip().lower() in ("", "keep", "none", "null"):
            return None
        return value


class GrpcSettings(BaseModel):
    """The Open Inference Protocol over gRPC (``AIWEB_GRPC__*``; ``aiweb serve
    --grpc-port``)."""

    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve inference.GRPCInferenceService on this port, on the HTTP host "
        "(default: off).",
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain; with tls_key_file, gRPC is served over TLS."
    )
    tls_key_file: Path | None = Field(
        None, description="PEM private key of tls_cert_file (set both, or neither)."
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest request or response message, bytes (default 4 MiB).",
    )
    grace_s: float = Field(
        5.0, ge=0, le=300, description="Seconds open calls get when the server stops."
    )
    batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="How long a micro-batch holding a gRPC call waits for more under load "
        "(grpc.aio accepts one call per event-loop turn, so calls reach the batcher one at "
        "a time; serving.max_wait_ms is the wait of the other requests).",
    )


class RolloutSettings(BaseModel):
    """Shadow, canary and A/B rollouts (``AIWEB_ROLLOUT__*``; :mod:`aiweb.rollout`)."""

    refresh_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often a serving process reads the running rollouts and adds its "
        "request and error counts to them (a change is seen by every process within "
        "twice this).",
    )
    shadow_queue: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Shadow and doubly-scored requests waiting to be scored, per process; "
        "beyond it they are dropped and counted (aiweb_rollout_shadow_dropped_total).",
    )
    shadow_budget: float = Field(
        0.1,
        gt=0,
        le=64,
        description="Seconds of shadow (and double) scoring per second of wall clock, per "
        "process, summed over the copies scored at once: a copy over it is dropped and "
        "counted, so a shadow uses spare capacity and gives way under load.",
    )
    agreement_rate: float = Field(
        20.0,
        ge=0,
        le=100_000,
        description="Candidate answers of a canary or A/B rollout scored again by the "
        "baseline per second, per process, for the agreement between the two (a token "
        "bucket; the rest are not scored twice). 0 turns the double scoring off.",
    )
    latency_samples: int = Field(
        20_000,
        ge=100,
        le=1_000_000,
        description="Most recent logged predictions of each version the latency gate reads.",
    )


class Settings(BaseSettings):
    """All of aiweb's settings. Every field is an ``AIWEB_<NAME>`` environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="AIWEB_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default_factory=_default_home, description="Data directory.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<home>/aiweb.db."
    )
    artifacts_dir: Path | None = Field(None, description="Default <home>/artifacts.")
    artifacts_url: str | None = Field(
        None,
        description="fsspec URL of the artifact store such as s3://bucket/prefix (a plain "
        "path or file:// URL is a local directory); overrides artifacts_dir.",
    )
    artifacts_options: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,  # may hold credentials
        description="fsspec storage options of artifacts_url, as JSON, e.g. "
        '{"endpoint_url": "http://127.0.0.1:9000", "key": "…", "secret": "…"}.',
    )
    data_home: Path | None = Field(
        None, description="Folder with datasets laid out as ../shared/data; looked in first."
    )
    log_inputs: bool = Field(
        False, description="Store input texts in the prediction log (else their sha256)."
    )
    redis_url: str | None = Field(
        None, description="redis://… shared by all workers (rate limits, caches)."
    )
    broker_url: str | None = Field(
        None,
        description="Celery broker (redis://… or amqp://…). Unset: aiweb serve runs jobs itself.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Signs sessions; generated into <home>/secret_key when unset (embedded "
        "default); required in production (PostgreSQL).",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (default none)."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)
    prediction_log: PredictionLogSettings = Field(default_factory=PredictionLogSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    log_format: Literal["text", "json"] = Field(
        "text", description="aiweb serve's logs: text, or one JSON object per line."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    sentry_dsn: str | None = Field(
        None, repr=False, description="Report errors to Sentry (pip install 'aiweb[sentry]')."
    )
    alert_webhook_url: str | None = Field(
        None,
        description="http(s) URL that gets one JSON POST per drifted model version and "
        "feature (unset: no alerts).",
    )
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)

    @field_validator("home", "artifacts_dir", "data_home", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the setting, or the SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'aiweb.db'}"

    @property
    def resolved_artifacts_dir(self) -> Path:
        """The artifact directory in force."""
        return self.artifacts_dir or self.home / "artifacts"

    @property
    def datasets_cache_dir(self) -> Path:
        """Where downloaded datasets are kept: ``<home>/datasets``."""
        return self.home / "datasets"

    def ensure_dirs(self) -> None:
        """Create ``home`` and, unless ``artifacts_url`` is set, the artifact directory.

        A store named by ``artifacts_url`` is not created here: a local one creates its
        directory when opened, and an object store needs none.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.artifacts_url:
            self.resolved_artifacts_dir.mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    """Read settings from the environment now (never cached at import time)."""
    return Settings()
