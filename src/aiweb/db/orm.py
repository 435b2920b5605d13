"""The core database tables. ``Sql*`` classes are rows; nothing outside the stores sees them.

Each task's own tables live in its package's ``orm`` module, on the same
:class:`~aiweb.db.base.Base`; this module imports no task.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# ``UTCDateTime`` and ``utcnow`` live in ``aiweb.db.base`` (task tables use them too);
# they stay importable from here
from aiweb.db.base import Base
from aiweb.db.base import UTCDateTime as UTCDateTime
from aiweb.db.base import utcnow as utcnow


class SqlRegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    task: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: the highest version number ever given (a deleted version's number is not reused)
    last_version: Mapped[int | None] = mapped_column(Integer)

    versions: Mapped[list[SqlModelVersion]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="SqlModelVersion.version"
    )
    aliases: Mapped[list[SqlModelAlias]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="SqlModelAlias.alias"
    )


class SqlModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    artifact_uri: Mapped[str | None] = mapped_column(String(1024))
    artifact_format: Mapped[str | None] = mapped_column(String(32))
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model: Mapped[SqlRegisteredModel] = relationship(back_populates="versions")


class SqlModelAlias(Base):
    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model: Mapped[SqlRegisteredModel] = relationship(back_populates="aliases")


class SqlAliasEvent(Base):
    """Every move of an alias, in order: the history ``rollback`` walks back through."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_model_alias", "model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False
    )
    alias: Mapped[str] = mapped_column(String(63), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SqlPrediction(Base):
    """One served prediction. Written in batches by the prediction logger."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_model_version_time", "model", "version", "created_at"),
        Index("ix_predictions_created_at", "created_at"),  # retention prunes by age
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model: Mapped[str] = mapped_column(String(63), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    label: Mapped[str] = mapped_column(String(255), nullable=False)
    scores: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    input_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    input_text: Mapped[str | None] = mapped_column(Text)
    #: characters of the input and its out-of-vocabulary rate: drift features
    input_chars: Mapped[int | None] = mapped_column(Integer)
    oov_rate: Mapped[float | None] = mapped_column(Float)
    #: ``{feature: bin}`` of the version's binned drift features (never input values)
    drift_bins: Mapped[dict[str, int] | None] = mapped_column(JSON)
    #: the predicted number of a model that predicts one (feedback on it is a value)
    value: Mapped[float | None] = mapped_column(Float)
    #: the predicted spans ``[[start, end, label], …]`` of a model whose predictions are
    #: spans (feedback on it may be the corrected list)
    spans: Mapped[list[list[Any]] | None] = mapped_column(JSON)
    #: the objects a model found in its input: ``{"boxes": [[label, x, y, width,
    #: height], …]}`` or ``{"text_sha256": …, "text": …}`` (feedback on it may be the
    #: corrected boxes or text: :mod:`aiweb.monitoring.feedback`)
    objects: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SqlFeedback(Base):
    """A user's correction of one prediction: the label it should have had.

    One row per prediction (a second submission replaces the first). ``predicted_at`` is
    the prediction's time, which the live-performance windows are computed over.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_model_version_predicted_at", "model", "version", "predicted_at"),
        Index("ix_feedback_created_at", "created_at"),  # retention prunes by age
    )

    prediction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model: Mapped[str] = mapped_column(String(63), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    predicted_label: Mapped[str] = mapped_column(String(255), nullable=False)
    label: Mapped[str] = mapped_column(String(255), nullable=False)
    #: for a prediction of a number: the true value and the predicted one (``label`` and
    #: ``predicted_label`` then hold them as text)
    value: Mapped[float | None] = mapped_column(Float)
    predicted_value: Mapped[float | None] = mapped_column(Float)
    #: for a corrected list of spans: the spans ``[[start, end, label], …]`` (``label``
    #: then holds the label of that list)
    spans: Mapped[list[list[Any]] | None] = mapped_column(JSON)
    #: for corrected objects: ``{"boxes": [[label, x, y, width, height], …]}`` or
    #: ``{"text": …}`` (``label`` then holds the label of that answer)
    objects: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: whether the prediction was right: ``label == predicted_label``, or for spans an
    #: exact match of the lists; ``None`` for a value (live accuracy counts this)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str] = mapped_column(String(128), nullable=False)
    predicted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SqlDriftAlert(Base):
    """One drift alert per model version and feature: the row is claimed (inserted) by the
    first process that sees the drift, so several workers never send it twice."""

    __tablename__ = "drift_alerts"

    model: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    feature: Mapped[str] = mapped_column(String(63), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SqlApiKey(Base):
    """An API key: public prefix for lookup, sha256 of the whole key, scopes; a
    publishable key also names its targets and origins (null otherwise)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    secret_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    targets: Mapped[list[str] | None] = mapped_column(JSON)
    origins: Mapped[list[str] | None] = mapped_column(JSON)


class SqlDashboardUser(Base):
    """A dashboard login: username and argon2id password hash (never the password)."""

    __tablename__ = "dashboard_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow
    )
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SqlDashboardSession(Base):
    """A live dashboard session: the sha256 of the random id its signed cookie carries.

    A cookie is honoured only while its row exists and has not expired; logging out
    deletes the row, so a copy of the cookie stops working at once, in every worker.
    """

    __tablename__ = "dashboard_sessions"
    __table_args__ = (Index("ix_dashboard_sessions_expires_at", "expires_at"),)

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SqlLoginThrottle(Base):
    """Consecutive failed dashboard logins of one account (``user:<name>``) or one
    client address (``addr:<address>``), and when the next attempt may be checked."""

    __tablename__ = "dashboard_login_throttle"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SqlAuditEvent(Base):
    """Who did what to what, when, with the state before and after."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SqlDataset(Base):
    """An uploaded data file (CSV or JSONL) kept in the artifact store."""

    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    columns: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    artifact_uri: Mapped[str] = mapped_column(String(1024), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SqlDocument(Base):
    """An uploaded document (PDF, DOCX or text): its extracted pages, and unless PII was
    redacted its original file, kept in the artifact store (``aiweb.documents``)."""

    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    pages: Mapped[int] = mapped_column(Integer, nullable=False)
    chars: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: whether e-mail addresses, phone numbers and URLs were replaced before storing
    redacted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: ``{"email": n, "phone": n, "url": n}`` replaced (counts only), when redacted
    redactions: Mapped[dict[str, int] | None] = mapped_column(JSON)
    #: the uploaded file, ``documents/<id>/original.<pdf|docx|txt>``; none when redacted
    original_uri: Mapped[str | None] = mapped_column(String(1024))
    #: the extracted pages (JSON), ``documents/<id>/pages.json``
    text_uri: Mapped[str] = mapped_column(String(1024), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SqlImage(Base):
    """An uploaded image (JPEG, PNG or WebP), kept in the artifact store as a PNG
    re-encoded from its decoded pixels, without metadata (``aiweb.images``)."""

    __tablename__ = "images"
    __table_args__ = (Index("ix_images_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: the uploaded file's format, told by its bytes: ``jpeg``, ``png`` or ``webp``
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    #: pixels across and down, as displayed (EXIF orientation applied)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    #: hex digest of the uploaded bytes
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    #: size of the uploaded file
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: the stored PNG, ``images/<id>/image.png``
    uri: Mapped[str] = mapped_column(String(1024), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SqlJob(Base):
    """Durable background work. This row, not the broker, is the truth about a job.

    ``attempts`` doubles as a fencing token: a runner may only write a job while the
    row still carries the attempt number it claimed.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_run_after", "status", "run_after"),
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_type_status", "type", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    message: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    cancel_requested: Mapped[bool] = mapped_column(default=False, nullable=False)
    runner: Mapped[str | None] = mapped_column(String(255))
    submitted_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SqlSchedule(Base):
    """A model's retraining schedule: cron expression, training spec, promotion rule."""

    __tablename__ = "schedules"

    model: Mapped[str] = mapped_column(String(63), primary_key=True)
    cron: Mapped[str] = mapped_column(String(255), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    job: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    promotion: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    enabled: Mapped[bool] = mapped_column(default=True, nullable=False)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_job_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SqlWebhook(Base):
    """A webhook subscription (``PUT /v1/webhooks/{name}``): where to post which events,
    and the secret that signs them (:mod:`aiweb.webhooks`)."""

    __tablename__ = "webhooks"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    events: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    secret: Mapped[str] = mapped_column(String(256), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SqlWebhookDelivery(Base):
    """One event to post to one webhook: pending until sent, or failed after its tries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_created_at", "webhook", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    webhook: Mapped[str] = mapped_column(String(63), nullable=False)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SqlRollout(Base):
    """A rollout of a model's candidate version (:mod:`aiweb.rollout`): its settings, its
    state, the traffic it sends to the candidate, and the counts every serving process
    adds to (requests, errors, shadow comparisons). ``active_model`` is the model's name
    while the rollout runs and ``NULL`` after it ended: its unique constraint keeps one
    running rollout per model in every database."""

    __tablename__ = "rollouts"
    __table_args__ = (
        UniqueConstraint("active_model"),
        Index("ix_rollouts_model_started_at", "model", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(63), nullable=False)
    active_model: Mapped[str | None] = mapped_column(String(63))
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    baseline: Mapped[int] = mapped_column(Integer, nullable=False)
    candidate: Mapped[int] = mapped_column(Integer, nullable=False)
    #: the fraction of users (or requests) the candidate answers now (shadow: copies)
    traffic: Mapped[float] = mapped_column(Float, nullable=False)
    #: the body of ``PUT /v1/models/{name}/rollout`` as accepted (steps, gates …)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    #: bumped by every change of state or traffic (a conditional update: one writer wins)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    requests_baseline: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    errors_baseline: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    requests_candidate: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    errors_candidate: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    #: inputs answered by both versions (shadow copies, doubly-scored samples) and how
    #: many of them got the same label
    compared: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    agreed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    shadow_dropped: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    started_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    stepped_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
