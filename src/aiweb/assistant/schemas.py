"""API shapes of the assistant (pydantic): assistants, a turn, conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from aiweb.assistant.config import AssistantConfig
from aiweb.assistant.store import AssistantRecord

__all__ = [
    "AssistantList",
    "AssistantOut",
    "ConversationList",
    "ConversationOut",
    "MessageIn",
    "MessageOut",
    "OperatorReplyIn",
    "SecretOut",
    "TurnOut",
    "VisitorMessage",
    "VisitorMessages",
]


class AssistantOut(BaseModel):
    """An assistant as the API shows it (its webhook secret is never shown)."""

    name: str
    config: AssistantConfig
    revision: int = Field(..., description="Grows by one with every change of the config.")
    created_by: str
    created_at: datetime
    updated_at: datetime
    webhook_secret: str | None = Field(
        None,
        description="The handoff webhook's signing secret (HMAC-SHA256, the "
        "Aiweb-Signature header): shown only in the answer that created the assistant "
        "(and by POST /v1/assistants/{name}/secret, which makes a new one).",
    )

    @classmethod
    def of(cls, record: AssistantRecord) -> AssistantOut:
        return cls(
            name=record.name,
            config=record.config,
            revision=record.revision,
            created_by=record.created_by,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class SecretOut(BaseModel):
    """A new signing secret, shown once."""

    webhook_secret: str


class AssistantList(BaseModel):
    assistants: list[AssistantOut]


class MessageIn(BaseModel):
    """A visitor's message."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"conversation_id": None, "text": "What is my balance?"}]},
    )

    conversation_id: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="The conversation the message belongs to; null starts a new one.",
    )
    text: str = Field(
        ...,
        min_length=1,
        max_length=2000,
        pattern=r"\S",
        description="What the visitor wrote: 1 to 2,000 characters, not only blanks.",
    )
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="The visitor's id in the application, kept with a new conversation "
        "(erasure by user finds it).",
    )


class TurnOut(BaseModel):
    """The reply to a message, and why the assistant gave it."""

    conversation_id: str
    status: str = Field(
        ..., description="bot, waiting_for_agent, agent or closed: who answers next."
    )
    reply: str | None = Field(..., description="What to show; null while a person answers.")
    type: str | None = Field(
        ..., description="intent, faq, slot_prompt, fallback or handoff (null: no reply)."
    )
    intent: str | None
    confidence: float | None = Field(
        ..., description="The intents model's probability of its top intent, in [0, 1]."
    )
    slots: dict[str, Any] = Field(..., description="The intent's slot values so far.")
    sources: list[dict[str, Any]] = Field(
        ..., description="The help collection's passages the reply quotes: document_id, score."
    )
    seq: int = Field(
        ...,
        description="The seq of the turn's last message (the reply's; the visitor's when "
        "there is no reply): a page that also shows pushed messages skips those up to it.",
    )
    prediction_id: str | None = Field(
        None,
        description="The intents model's logged prediction; send feedback on the turn to "
        "POST /v1/predictions/{id}/feedback with it.",
    )


class MessageOut(BaseModel):
    """One stored message of a conversation."""

    seq: int
    role: str = Field(..., description="visitor, bot or agent.")
    text: str
    type: str | None
    intent: str | None
    confidence: float | None
    slots: dict[str, Any] | None
    sources: list[dict[str, Any]]
    versions: dict[str, str] = Field(
        ..., description="The model versions that answered a bot turn: intents, entities."
    )
    prediction_id: str | None
    author: str | None = Field(..., description="The operator, on an agent's message.")
    created_at: datetime
    feedback: dict[str, Any] | None = Field(
        None, description="The visitor's on a bot reply: helpful, intent, at."
    )


class ConversationOut(BaseModel):
    """A stored conversation (with its messages when read alone)."""

    id: str
    assistant: str
    status: str
    operator: str | None
    user_id: str | None
    origin: str | None
    intent: str | None = Field(..., description="The intent whose slots are being filled.")
    slots: dict[str, Any]
    message_count: int
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut] | None = None


class OperatorReplyIn(BaseModel):
    """An operator's message to the visitor."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        ...,
        min_length=1,
        max_length=2000,
        pattern=r"\S",
        description="What the operator writes: 1 to 2,000 characters, not only blanks.",
    )


class VisitorMessage(BaseModel):
    """A message as the visitor's page shows it."""

    seq: int
    role: str = Field(..., description="visitor, bot or agent.")
    text: str
    type: str | None
    sources: list[dict[str, Any]]
    created_at: datetime


class VisitorMessages(BaseModel):
    """A conversation's new messages, for a page that talks over REST."""

    conversation_id: str
    status: str
    messages: list[VisitorMessage]


class ConversationList(BaseModel):
    conversations: list[ConversationOut]


class TurnFeedbackIn(BaseModel):
    """A visitor's feedback on a bot reply: ``helpful`` (thumbs up or down), ``intent``
    (what the message really asked for: one of the intents model's labels), or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": ["helpful"]}, {"required": ["intent"]}],
            "examples": [{"helpful": True}, {"helpful": False, "intent": "transfer"}],
        },
    )

    helpful: StrictBool | SkipJsonSchema[None] = Field(
        None, description="Whether the reply helped (thumbs up or down)."
    )
    intent: (
        Annotated[StrictStr, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
        | SkipJsonSchema[None]
    ) = Field(
        None, description="The intent the visitor's message was: a label of the intents model."
    )

    @field_validator("helpful", "intent", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # left out means not given; null is not a value of either
            raise ValueError("leave the field out instead of sending null")
        return value

    @model_validator(mode="after")
    def _something(self) -> TurnFeedbackIn:
        if self.helpful is None and self.intent is None:
            raise ValueError("give helpful (true or false), intent, or both")
        return self


class TurnFeedbackOut(BaseModel):
    """The feedback as stored, and the label it gave the intents model's prediction."""

    seq: int
    feedback: dict[str, Any] = Field(..., description="helpful, intent, at (ISO 8601).")
    label: str | None = Field(
        ...,
        description="The label sent as the turn's prediction feedback (live accuracy, "
        "retraining data); null when the feedback names none.",
    )
