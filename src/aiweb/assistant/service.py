"""The assistant's service: what its routes and CLI call.

:class:`AssistantService` checks an assistant's config against the registry and the
search collections before it is saved, and runs a turn: it reads the conversation, asks
:func:`~aiweb.assistant.dialogue.respond` for the reply with a :class:`ModelBrain` (the
intents model through text classification's prediction service, the entity model
through the entity service, the help collection through the search service), and
writes the visitor's message, the reply and the new state in one transaction
(:meth:`~aiweb.assistant.store.AssistantStore.record`). When another writer (a turn on
another worker, an operator) changed the conversation in between, the turn is read and
run again, at most :data:`TURN_ATTEMPTS` times.

Every model call is logged like a call of the predict route, so the intents model's
monitoring (latency, drift, live accuracy from feedback on the turn's ``prediction_id``)
counts the assistant's traffic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session

from aiweb.assistant.config import AssistantConfig
from aiweb.assistant.dialogue import IntentGuess, Passage, Reply, respond
from aiweb.assistant.extractors import EntitySpan
from aiweb.assistant.live import Hub
from aiweb.assistant.store import (
    AssistantRecord,
    AssistantStore,
    ConversationRecord,
    agent_message,
    reply_message,
    visitor_message,
)
from aiweb.classification.service import PredictionService
from aiweb.entities.service import EntityService
from aiweb.errors import (
    CollectionNotFound,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    StaleConversation,
)
from aiweb.monitoring.feedback import FeedbackService
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.search.service import SearchService
from aiweb.webhooks import delete_managed, put_managed, queue

log = logging.getLogger("aiweb.assistant")

__all__ = [
    "HANDOFF_EVENT",
    "HANDOFF_MESSAGES",
    "MAX_MESSAGE_CHARS",
    "OPERATOR_ACTIONS",
    "TURN_ATTEMPTS",
    "AssistantService",
    "ModelBrain",
    "Turn",
    "check_message",
    "turn_out",
    "webhook_name",
]

#: A turn read again and run again at most this many times when the conversation
#: changed under it.
TURN_ATTEMPTS = 5
#: The longest visitor message, in characters (code points).
MAX_MESSAGE_CHARS = 2000

_INTENTS_TASK = "text-classification"
_ENTITIES_TASK = "token-classification"


def check_message(text: str) -> str:
    """The visitor's message, stripped, or a 422.

    Raises:
        InvalidInputError: empty (or only blanks), over :data:`MAX_MESSAGE_CHARS`
            characters, or holding a NUL character or a lone surrogate.
    """
    if "\x00" in text:
        raise InvalidInputError("text contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("text is not valid Unicode (a lone surrogate)") from None
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError("text is empty")
    if len(stripped) > MAX_MESSAGE_CHARS:
        raise InvalidInputError(
            f"text has {len(stripped)} characters; a message has at most {MAX_MESSAGE_CHARS}"
        )
    return stripped


@dataclass(frozen=True)
class Turn:
    """One turn's outcome: the conversation after it and the bot's reply (``None`` when
    a person has the conversation and the message waits for them)."""

    conversation: ConversationRecord
    reply: Reply | None


class ModelBrain:
    """The :class:`~aiweb.assistant.dialogue.Brain` of one turn, on the served models.

    ``versions`` collects the model versions the turn asked (``{"intents":
    "intents:3", "entities": "people:1", "faq_collection": "help@12"}``: the
    collection with its revision), stored with the reply.
    """

    def __init__(self, service: AssistantService, config: AssistantConfig) -> None:
        self.service = service
        self.config = config
        self.versions: dict[str, str] = {}

    async def classify(self, text: str) -> IntentGuess:
        """The intents model's label for ``text``; out of scope when its calibrated
        rejection answered a label that is not a class (``oos``)."""
        predictions = self.service.require_predictions()
        answer = await predictions.predict(self.config.intents_model, [text])
        found = answer["predictions"][0]
        scores: dict[str, float] = found["scores"]
        label: str = found["label"]
        version = f"{answer['model']}:{answer['version']}"
        self.versions["intents"] = version
        out_of_scope = label not in scores
        confidence = max(scores.values()) if out_of_scope else scores[label]
        return IntentGuess(
            label=label,
            confidence=round(float(confidence), 6),
            out_of_scope=out_of_scope,
            prediction_id=found["id"],
            version=version,
        )

    async def entities(self, text: str) -> list[EntitySpan]:
        """The entity model's spans in ``text``; ``[]`` without an entity model."""
        if self.config.entities_model is None:
            return []
        entities = self.service.require_entities()
        answer = await entities.predict(self.config.entities_model, [text])
        self.versions["entities"] = f"{answer['model']}:{answer['version']}"
        return [
            EntitySpan(
                label=e["label"],
                text=e["text"],
                start=e["start"],
                end=e["end"],
                extra={"score": e.get("score")},
            )
            for e in answer["predictions"][0]["entities"]
        ]

    async def answer(self, text: str) -> Passage | None:
        """The help collection's answer for ``text``: its top hybrid-search hit when the
        hit's cosine similarity to ``text`` reaches the collection's calibrated
        ``answer_threshold`` (:meth:`aiweb.search.service.SearchService.calibrate`).

        ``None`` without a help collection, when the collection is gone or not
        calibrated (logged), or when the top hit is not close enough.
        """
        name = self.config.faq_collection
        if name is None:
            return None
        try:  # the search reads the collection (its threshold) once, with the hits
            result = await self.service.require_search().search(name, text, top_k=1, mode="hybrid")
        except CollectionNotFound:
            log.warning("assistant's help collection %r does not exist", name)
            return None
        collection = result.collection
        assert collection is not None
        self.versions["faq_collection"] = f"{name}@{collection.revision}"
        threshold = collection.answer_threshold
        if threshold is None:
            log.warning(
                "help collection %r is not calibrated: it answers nothing until "
                "POST /v1/collections/%s/calibrate",
                name,
                name,
            )
            return None
        if not result.hits:
            return None
        hit = result.hits[0]
        if hit.similarity is None or hit.similarity < threshold:
            return None
        title = hit.metadata.get("title")
        url = hit.metadata.get("url")
        return Passage(
            text=hit.text,
            document_id=hit.id,
            score=round(hit.similarity, 6),
            title=title if isinstance(title, str) else None,
            url=url if isinstance(url, str) and url.startswith(("https://", "http://")) else None,
        )


class AssistantService:
    """Assistants and their turns (see the module docstring).

    Args:
        store: assistants, conversations, messages.
        registry: resolves the config's models (checks on save).
        predictions: text classification's prediction service (the intents model), or
            ``None`` when that task is not installed (a turn then answers 503).
        entities: the entity service (``entities:`` slots), or ``None``.
        search: the search service (the help collection), or ``None``.
        hub: live delivery to the sockets watching a conversation
            (:mod:`aiweb.assistant.live`); default: this process only.
    """

    def __init__(
        self,
        store: AssistantStore,
        registry: RegistryService,
        *,
        predictions: PredictionService | None = None,
        entities: EntityService | None = None,
        search: SearchService | None = None,
        hub: Hub | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.predictions = predictions
        self.entities = entities
        self.search = search
        self.hub = hub or Hub()

    def require_predictions(self) -> PredictionService:
        if self.predictions is None:
            raise _missing("text-classification", "the intents model")
        return self.predictions

    def require_search(self) -> SearchService:
        if self.search is None:
            raise _missing("search", "the help collection")
        return self.search

    def require_entities(self) -> EntityService:
        if self.entities is None:
            raise _missing("token-classification", "the entity model")
        return self.entities

    # ---- assistants ----------------------------------------------------------------------

    def check(self, config: AssistantConfig) -> dict[str, ModelVersion]:
        """Check ``config`` against what is registered; returns the versions its model
        names resolve to now (``{"intents": …, "entities": …}``).

        Raises:
            NotFoundError (404): a model or the help collection does not exist.
            ConflictError (409): a model of another task; an intent the config names
                that the intents model does not know; an ``entities:LABEL`` the entity
                model does not find (each naming the field).
        """
        versions = {"intents": self._model(config.intents_model, _INTENTS_TASK, "intents_model")}
        labels = set(versions["intents"].labels)
        named = set(config.responses) | set(config.slots) | set(config.handoff.intents)
        unknown = sorted(named - labels)
        if unknown:
            raise ConflictError(
                f"intents_model {config.intents_model!r} has no intent {unknown} (its "
                f"intents: {', '.join(sorted(labels)[:40])}"
                + (" …" if len(labels) > 40 else "")
                + "); fix responses, slots or handoff.intents, or retrain the model"
            )
        if config.entities_model is not None:
            model = self._model(config.entities_model, _ENTITIES_TASK, "entities_model")
            versions["entities"] = model
            missing = sorted(config.referenced_labels() - set(model.labels))
            if missing:
                raise ConflictError(
                    f"entities_model {config.entities_model!r} finds no {missing} "
                    f"(it finds: {', '.join(sorted(model.labels))})"
                )
        if config.faq_collection is not None:
            try:
                self.require_search().get_collection(config.faq_collection)
            except NotFoundError as exc:
                raise type(exc)(
                    f"faq_collection: {exc.detail}; create it and add the help articles "
                    "first (PUT /v1/collections/NAME, then its documents)"
                ) from None
        return versions

    def _model(self, name: str, task: str, field: str) -> ModelVersion:
        try:
            version = self.registry.resolve(ModelRef.parse(name))
        except NotFoundError as exc:
            raise type(exc)(f"{field}: {exc.detail}") from None
        if version.task != task:
            raise ConflictError(
                f"{field}: model {name!r} is a {version.task} model; it must be a {task} model"
            )
        return version

    def put(
        self, name: str, config: AssistantConfig, *, actor: str
    ) -> tuple[AssistantRecord, bool]:
        """Check ``config`` (:meth:`check`) and save it as the assistant ``name``;
        ``(assistant, created)``.

        A help collection with documents but no answer threshold yet is calibrated
        first, on aiweb's packaged off-topic questions (a second or two); one without
        documents answers nothing until it is calibrated.
        """
        self.check(config)
        if config.faq_collection is not None:
            search = self.require_search()
            collection = search.store.get_collection(config.faq_collection, count=True)
            if collection.answer_threshold is None and collection.documents:
                search.calibrate(config.faq_collection)
        record, created = self.store.put(name, config, actor=actor)
        self._sync_webhook(record, actor)
        return record, created

    def delete(self, name: str) -> dict[str, int]:
        """Delete the assistant ``name`` with its conversations and its handoff webhook;
        ``{"conversations": n, "messages": m}``. Raises AssistantNotFound."""
        record = self.store.get(name)
        counts = self.store.delete(name)
        delete_managed(self.store.sessions, webhook_name(record))
        return counts

    def rotate_secret(self, name: str, *, actor: str) -> str:
        """A new handoff-webhook signing secret for ``name`` (the old one stops working
        at once); returns it. Raises AssistantNotFound."""
        secret = self.store.rotate_secret(name)
        self._sync_webhook(self.store.get(name), actor)
        return secret

    def _sync_webhook(self, record: AssistantRecord, actor: str) -> None:
        """The assistant's handoff webhook, as its config says (created, changed or
        deleted); deliveries go through :mod:`aiweb.webhooks`' outbox."""
        url = record.config.handoff.webhook_url
        if url is None:
            delete_managed(self.store.sessions, webhook_name(record))
        else:
            put_managed(self.store.sessions, webhook_name(record), url, record.secret, actor=actor)

    # ---- turns ---------------------------------------------------------------------------

    async def message(
        self,
        name: str,
        text: str,
        *,
        conversation_id: str | None = None,
        origin: str | None = None,
        user_id: str | None = None,
        now: datetime | None = None,
    ) -> Turn:
        """The visitor's message ``text`` to the assistant ``name``: a new conversation
        when ``conversation_id`` is ``None``.

        Raises:
            AssistantNotFound, ConversationNotFound (404): no such assistant, or no such
                conversation of it.
            InvalidInputError (422): see :func:`check_message`.
            StaleConversation (409): the conversation kept changing while the turn ran.
            ModelNotFound, QueueFullError, …: from the models, as the predict route.
        """
        text = check_message(text)
        assistant = await anyio.to_thread.run_sync(self.store.get, name)
        if conversation_id is None:
            conversation = await anyio.to_thread.run_sync(
                lambda: self.store.start(name, origin=origin, user_id=user_id)
            )
        else:
            conversation = await anyio.to_thread.run_sync(
                lambda: self.store.conversation(conversation_id, assistant=name)
            )
        when = now or datetime.now(UTC)
        for _ in range(TURN_ATTEMPTS):
            state = conversation.state
            brain = ModelBrain(self, assistant.config)
            reply = await respond(assistant.config, state, text, brain, now=when)
            messages = [visitor_message(text)]
            if reply is not None:
                messages.append(reply_message(reply, brain.versions))
            also = None
            if reply is not None and reply.type == "handoff":
                also = partial(self._queue_handoff, assistant, reply)
            try:
                written = await anyio.to_thread.run_sync(
                    partial(self.store.record, conversation, state, messages, also=also)
                )
            except StaleConversation:
                conversation = await anyio.to_thread.run_sync(
                    partial(self.store.conversation, conversation.id, assistant=name)
                )
                continue
            await self.publish(written, messages)
            return Turn(written, reply)
        raise StaleConversation(
            f"conversation {conversation.id} kept changing during the turn; send it again"
        )

    async def publish(
        self, conversation: ConversationRecord, messages: list[dict[str, Any]]
    ) -> None:
        """Tell the sockets watching ``conversation`` of its new ``messages`` (the last
        ones written, numbered up to its ``message_count``) and of its status."""
        first = conversation.message_count - len(messages) + 1
        for i, message in enumerate(messages):
            await self.hub.publish(
                conversation.id,
                {"type": "message", "message": live_message(first + i, message)},
            )
        await self.hub.publish(conversation.id, {"type": "status", "status": conversation.status})

    def _queue_handoff(
        self, assistant: AssistantRecord, reply: Reply, s: Session, conversation: Any
    ) -> None:
        """Queue ``assistant.handoff`` in the turn's transaction: to the assistant's own
        webhook (``handoff.webhook_url``, signed with its secret) and to every webhook
        subscribed to the event."""
        data = {
            "assistant": assistant.name,
            "conversation_id": conversation.id,
            "reason": reply.handoff,
            "intent": reply.intent,
            "user_id": conversation.user_id,
            "origin": conversation.origin,
            "messages": [
                {"seq": m["seq"], "role": m["role"], "text": m["text"], "at": m["created_at"]}
                for m in self.store.recent_messages(s, conversation.id, HANDOFF_MESSAGES)
            ],
        }
        queue(s, HANDOFF_EVENT, data, to=webhook_name(assistant))

    async def feedback(
        self,
        name: str,
        conversation_id: str,
        seq: int,
        *,
        helpful: bool | None,
        intent: str | None,
        actor: str,
        predictions: FeedbackService,
    ) -> dict[str, Any]:
        """A visitor's feedback on the bot's reply ``seq``: thumbs up or down
        (``helpful``), the intent the message really was (``intent``), or both.

        Stored on the message. When it names a label for the intents model's prediction
        of that turn — ``intent``, or a thumbs up on a reply the predicted intent chose
        (type ``intent`` or ``slot_prompt``) — that label is also the prediction's
        feedback (:meth:`FeedbackService.submit`): it counts towards the model's live
        accuracy and joins the data of its next retraining. A thumbs down names no label.

        Returns:
            ``{"seq", "feedback": {"helpful", "intent", "at"}, "label"}`` (``label``: the
            one sent as the prediction's feedback, or ``None``).

        Raises:
            ConversationNotFound (404): no such conversation of ``name``, or message.
            ConflictError (409): the message is not the bot's, or ``intent`` is given
                for a reply the intents model did not take part in.
            InvalidInputError (422): ``intent`` is not a class of the model version.
        """
        message = await anyio.to_thread.run_sync(
            lambda: self.store.message(conversation_id, seq, assistant=name)
        )
        if message["role"] != "bot":
            raise ConflictError(
                f"message {seq} is the {message['role']}'s; feedback is on the bot's replies"
            )
        label = intent
        if label is None and helpful and message["type"] in ("intent", "slot_prompt"):
            label = message["intent"]
        prediction_id = message["prediction_id"]
        if intent is not None and prediction_id is None:
            raise ConflictError(
                f"the intents model did not take part in reply {seq}; only helpful applies"
            )
        if label is not None and prediction_id is not None:
            await predictions.submit(prediction_id, label, None, actor)
        stored = {"helpful": helpful, "intent": intent, "at": datetime.now(UTC).isoformat()}
        await anyio.to_thread.run_sync(
            lambda: self.store.set_feedback(conversation_id, seq, stored)
        )
        return {"seq": seq, "feedback": stored, "label": label if prediction_id else None}

    async def operate(
        self, conversation_id: str, action: str, operator: str, text: str | None = None
    ) -> ConversationRecord:
        """An operator's action on a conversation (the inbox), written in a worker thread,
        then told to the sockets watching it (an operator's reply reaches the visitor's
        widget at once):

        - ``take``: a person answers from now on (``status`` ``agent``, ``operator`` set);
        - ``reply``: the operator's message ``text`` to the visitor (takes the
          conversation first when nobody has it);
        - ``release``: back to the bot (its slot filling starts afresh);
        - ``close``: done; the visitor's next message starts with the bot again.

        Raises:
            ConversationNotFound (404).
            ConflictError (409): another operator has it; a reply to a closed one.
            InvalidInputError (422): an unknown action; a reply without text.
            StaleConversation (409): it kept changing (retried :data:`TURN_ATTEMPTS`
                times first).
        """
        if action not in OPERATOR_ACTIONS:
            raise InvalidInputError(f"action must be one of {', '.join(OPERATOR_ACTIONS)}")
        message = None
        if action == "reply":
            if text is None:
                raise InvalidInputError("a reply needs text")
            message = check_message(text)
        record, written = await anyio.to_thread.run_sync(
            partial(self._operate, conversation_id, action, operator, message)
        )
        await self.publish(record, written)
        return record

    def _operate(
        self, conversation_id: str, action: str, operator: str, message: str | None
    ) -> tuple[ConversationRecord, list[dict[str, Any]]]:
        """:meth:`operate`'s write: the conversation after it, and the messages added."""
        for _ in range(TURN_ATTEMPTS):
            conversation = self.store.conversation(conversation_id)
            state = conversation.state
            current = conversation.operator
            if current is not None and current != operator and action in ("take", "reply"):
                raise ConflictError(
                    f"operator {current!r} has conversation {conversation_id}; they release "
                    "it first"
                )
            messages: list[dict[str, Any]] = []
            new_operator: str | None = operator
            if action in ("take", "reply"):
                if state.status == "closed" and action == "reply":
                    raise ConflictError(f"conversation {conversation_id} is closed")
                state.status = "agent"
                state.forget_intent()
                if message is not None:
                    messages.append(agent_message(message, operator))
            elif action == "release":
                state.status, state.fallbacks, new_operator = "bot", 0, None
                state.forget_intent()
            else:
                state.status, new_operator = "closed", None
                state.forget_intent()
            try:
                return self.store.record(
                    conversation, state, messages, operator=new_operator, set_operator=True
                ), messages
            except StaleConversation:
                continue
        raise StaleConversation(f"conversation {conversation_id} kept changing; try again")


#: The webhook event of a handoff, and how many of the last messages it carries.
HANDOFF_EVENT = "assistant.handoff"
HANDOFF_MESSAGES = 20


def webhook_name(assistant: AssistantRecord) -> str:
    """The name of an assistant's handoff webhook among ``/v1/webhooks``:
    ``assistant-<id>`` (ids are never reused)."""
    return f"assistant-{assistant.id}"


#: What an operator may do with a conversation (``POST /v1/conversations/{id}/{action}``).
OPERATOR_ACTIONS = ("take", "reply", "release", "close")


def _missing(task: str, what: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(f"{what} needs the {task} task, which this server does not run")


def live_message(seq: int, message: dict[str, Any]) -> dict[str, Any]:
    """A message as a visitor's page shows it (``VisitorMessage``), from its row values."""
    return {
        "seq": seq,
        "role": message["role"],
        "text": message["text"],
        "type": message.get("type"),
        "sources": message.get("sources") or [],
        "created_at": datetime.now(UTC).isoformat(),
    }


def turn_out(turn: Turn) -> dict[str, Any]:
    """A turn as ``POST /v1/assistants/{name}/messages`` answers it."""
    conversation = turn.conversation
    out: dict[str, Any] = {
        "conversation_id": conversation.id,
        "status": conversation.status,
        "seq": conversation.message_count,
    }
    if turn.reply is None:
        out.update(
            {
                "reply": None,
                "type": None,
                "intent": None,
                "confidence": None,
                "slots": {},
                "sources": [],
            }
        )
    else:
        out.update(turn.reply.public())
        out["prediction_id"] = turn.reply.prediction_id
    return out
