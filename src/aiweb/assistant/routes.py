"""``/v1/assistants`` and ``/v1/conversations``: assistants, a visitor's messages, and the
stored conversations.

Managing assistants and reading or erasing conversations needs scope ``admin`` (a
config holds the help desk's webhook; a conversation holds what visitors wrote).
Sending a message needs ``chat``: a publishable ``chat`` key in the web page (limited to
its assistants and origins, with a budget per client address and per conversation), or
a ``predict`` key when the application's backend relays its visitors' messages.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse
from fastapi.websockets import WebSocketDisconnect

from aiweb.api.deps import FeedbackDep
from aiweb.assistant.config import AssistantConfig
from aiweb.assistant.dialogue import STATUSES
from aiweb.assistant.schemas import (
    AssistantList,
    AssistantOut,
    ConversationList,
    ConversationOut,
    MessageIn,
    OperatorReplyIn,
    SecretOut,
    TurnFeedbackIn,
    TurnFeedbackOut,
    TurnOut,
    VisitorMessage,
    VisitorMessages,
)
from aiweb.assistant.service import AssistantService, turn_out
from aiweb.errors import AiwebError, InvalidInputError
from aiweb.names import NAME_REGEX, check_name
from aiweb.security.auth import (
    ANONYMOUS,
    Authorized,
    actor,
    authorize,
    charge,
    charge_key,
    request_token,
    scoped,
)
from aiweb.security.keys import ApiKey

router = APIRouter(tags=["assistant"])
log = logging.getLogger("aiweb.assistant")

#: The embeddable chat widget (``GET /widget.js``).
WIDGET = pathlib.Path(__file__).with_name("static") / "widget.js"


async def _service(request: Request) -> AssistantService:
    service: AssistantService = request.app.state.assistants
    return service


ServiceDep = Annotated[AssistantService, Depends(_service)]
NamePath = Annotated[
    str,
    Path(
        description="Assistant name (lower-case letters, digits, `_`, `-`).",
        max_length=63,
        pattern=NAME_REGEX,
    ),
]
ConversationPath = Annotated[
    str, Path(description="Conversation id (32 hex characters).", pattern=r"^[0-9a-f]{32}$")
]


_CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")
_NO_ASSISTANT = {404: {"description": "No such assistant."}}
_CHAT_KEY = {
    403: {
        "description": "The key lacks scope 'chat' (or 'predict'), or is a publishable chat "
        "key for other assistants or other origins, or was sent without an Origin header."
    },
    429: {
        "description": "Rate limit exceeded (a chat key: per client address, and per "
        "conversation); retry after Retry-After."
    },
}


async def _visitor(state: Any, key: ApiKey, name: str, conversation_id: str | None) -> None:
    """Let a visitor's request to the assistant ``name`` through (its key and the page's
    origin were checked by :func:`~aiweb.security.auth.authorize`): a publishable key
    must list the assistant, and pays per conversation.

    Raises:
        ForbiddenError: a publishable key for other assistants.
        RateLimitedError: the conversation's budget is spent.
    """
    key.check_target(name)
    if key.publishable and conversation_id is not None:
        await charge(state.rate_limiter, f"conv:{conversation_id}", "conversation")


def _principal(request: Request) -> ApiKey:
    key = getattr(request.state, "principal", None)
    return key if isinstance(key, ApiKey) else ANONYMOUS


_NO_CONVERSATION = {404: {"description": "No such conversation."}}


@router.put(
    "/v1/assistants/{name}",
    response_model=AssistantOut,
    **scoped(
        "admin",
        {
            200: {"description": "The assistant existed; its config is replaced."},
            201: {"description": "Created."},
            422: {
                "description": "The config is invalid, or names a model of another task, "
                "an intent the model does not know, or a collection that does not exist."
            },
        },
    ),
)
async def put_assistant(
    name: NamePath,
    body: AssistantConfig,
    request: Request,
    response: Response,
    service: ServiceDep,
) -> AssistantOut:
    """Create an assistant (201) or replace its config (200). The config is checked
    against what is registered: the intents model is a text-classification model that
    knows every intent the config names, the entity model finds every `entities:LABEL`,
    the help collection exists."""
    record, created = await anyio.to_thread.run_sync(
        lambda: service.put(name, body, actor=actor(request))
    )
    response.status_code = 201 if created else 200
    out = AssistantOut.of(record)
    if created:  # shown once; POST …/secret makes a new one
        out.webhook_secret = record.secret
    return out


@router.post(
    "/v1/assistants/{name}/secret",
    response_model=SecretOut,
    **scoped("admin", _NO_ASSISTANT),
)
async def rotate_secret(name: NamePath, request: Request, service: ServiceDep) -> SecretOut:
    """A new signing secret for the assistant's handoff webhook (the old one stops
    working at once), shown this once."""
    secret = await anyio.to_thread.run_sync(
        lambda: service.rotate_secret(name, actor=actor(request))
    )
    return SecretOut(webhook_secret=secret)


@router.get("/v1/assistants", response_model=AssistantList, **scoped("admin"))
async def list_assistants(service: ServiceDep) -> AssistantList:
    """Every assistant, by name."""
    records = await anyio.to_thread.run_sync(service.store.assistants)
    return AssistantList(assistants=[AssistantOut.of(r) for r in records])


@router.get("/v1/assistants/{name}", response_model=AssistantOut, **scoped("admin", _NO_ASSISTANT))
async def get_assistant(name: NamePath, service: ServiceDep) -> AssistantOut:
    """One assistant and its config."""
    return AssistantOut.of(await anyio.to_thread.run_sync(service.store.get, name))


@router.delete("/v1/assistants/{name}", status_code=204, **scoped("admin", _NO_ASSISTANT))
async def delete_assistant(name: NamePath, service: ServiceDep) -> Response:
    """Delete an assistant with all its conversations and their messages."""
    await anyio.to_thread.run_sync(service.delete, name)
    return Response(status_code=204)


@router.post(
    "/v1/assistants/{name}/messages",
    response_model=TurnOut,
    **scoped(
        "chat",
        {
            **_CHAT_KEY,
            404: {"description": "No such assistant, or no such conversation of it."},
            409: {"description": "The conversation kept changing during the turn; resend."},
            422: {"description": "An empty message, or one over 2,000 characters."},
        },
    ),
)
async def post_message(
    name: NamePath, body: MessageIn, request: Request, service: ServiceDep
) -> dict[str, Any]:
    """The visitor's message, and the assistant's reply with why it said it: `type` is
    `intent` (the intent's response), `slot_prompt` (a slot is missing), `faq` (a passage
    of the help collection; `sources` cites it), `fallback`, or `handoff` (a person will
    answer; `status` is then `waiting_for_agent`). `conversation_id: null` starts a
    conversation; send the returned id with the next message. While a person has the
    conversation the message is stored for them and `reply` is `null`."""
    await _visitor(request.app.state, _principal(request), name, body.conversation_id)
    turn = await service.message(
        name,
        body.text,
        conversation_id=body.conversation_id,
        origin=request.headers.get("origin"),
        user_id=body.user_id,
    )
    return turn_out(turn)


@router.get("/v1/conversations", response_model=ConversationList, **scoped("admin"))
async def list_conversations(
    service: ServiceDep,
    assistant: Annotated[
        str | None, Query(max_length=63, pattern=NAME_REGEX, description="Only this one's.")
    ] = None,
    status: Annotated[
        Literal["bot", "waiting_for_agent", "agent", "closed"] | None,
        Query(description=f"Only those in this status: {', '.join(STATUSES)}."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationList:
    """Conversations, the most recently updated first."""
    records = await anyio.to_thread.run_sync(
        lambda: service.store.conversations(assistant=assistant, status=status, limit=limit)
    )
    return ConversationList(
        conversations=[ConversationOut.model_validate(r.public()) for r in records],
    )


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=ConversationOut,
    **scoped("admin", _NO_CONVERSATION),
)
async def get_conversation(conversation_id: ConversationPath, service: ServiceDep) -> Any:
    """One conversation with its messages (the last 1,000), each bot reply with the
    model versions that answered it."""
    record = await anyio.to_thread.run_sync(
        lambda: service.store.conversation(conversation_id, messages=True)
    )
    return ConversationOut.model_validate({"messages": [], **record.public()})


@router.delete(
    "/v1/conversations/{conversation_id}",
    status_code=204,
    **scoped("admin", _NO_CONVERSATION),
)
async def delete_conversation(conversation_id: ConversationPath, service: ServiceDep) -> Response:
    """Erase one conversation and its messages."""
    await anyio.to_thread.run_sync(service.store.erase, conversation_id)
    return Response(status_code=204)


@router.get(
    "/v1/assistants/{name}/conversations/{conversation_id}/messages",
    response_model=VisitorMessages,
    **scoped("chat", {**_CHAT_KEY, **_NO_CONVERSATION}),
)
async def visitor_messages(
    name: NamePath,
    conversation_id: ConversationPath,
    request: Request,
    service: ServiceDep,
    after: Annotated[int, Query(ge=0, description="Only messages after this seq.")] = 0,
) -> VisitorMessages:
    """The conversation's messages after `after` (its `seq`), oldest first, at most 200:
    how a page that talks over REST sees an operator's replies (poll with the last `seq`
    it showed)."""
    await _visitor(request.app.state, _principal(request), name, conversation_id)
    conversation, messages = await anyio.to_thread.run_sync(
        lambda: service.store.messages_after(conversation_id, after, assistant=name)
    )
    return VisitorMessages(
        conversation_id=conversation.id,
        status=conversation.status,
        messages=[VisitorMessage.model_validate(m) for m in messages],
    )


@router.post(
    "/v1/assistants/{name}/conversations/{conversation_id}/messages/{seq}/feedback",
    response_model=TurnFeedbackOut,
    **scoped(
        "chat",
        {
            **_CHAT_KEY,
            404: {"description": "No such conversation of the assistant, or message."},
            409: {
                "description": "The message is not a bot reply, or `intent` is given for a "
                "reply the intents model did not take part in."
            },
            422: {"description": "`intent` is not a label of the intents model, or a bad body."},
        },
    ),
)
async def turn_feedback(
    name: NamePath,
    conversation_id: ConversationPath,
    seq: Annotated[int, Path(ge=1, le=2_147_483_647, description="The reply's seq.")],
    body: TurnFeedbackIn,
    request: Request,
    service: ServiceDep,
    feedback: FeedbackDep,
) -> dict[str, Any]:
    """The visitor's feedback on a bot reply: thumbs up or down (`helpful`), the intent
    the message really was (`intent`), or both. Stored on the message; a label it implies
    — `intent`, or a thumbs up on a reply the predicted intent chose — is also the
    feedback on the turn's intents prediction (its live accuracy, and data for the next
    retraining). Sending it again replaces it."""
    await _visitor(request.app.state, _principal(request), name, conversation_id)
    return await service.feedback(
        name,
        conversation_id,
        seq,
        helpful=body.helpful,
        intent=body.intent,
        actor=actor(request),
        predictions=feedback,
    )


_OPERATOR = {
    404: {"description": "No such conversation."},
    409: {"description": "Another operator has it, or it is closed (a reply)."},
}


async def _operate(
    service: AssistantService,
    request: Request,
    conversation_id: str,
    action: str,
    text: str | None = None,
) -> ConversationOut:
    record = await service.operate(conversation_id, action, actor(request), text)
    return ConversationOut.model_validate(record.public())


@router.post(
    "/v1/conversations/{conversation_id}/take",
    response_model=ConversationOut,
    **scoped("admin", _OPERATOR),
)
async def take_conversation(
    conversation_id: ConversationPath, request: Request, service: ServiceDep
) -> ConversationOut:
    """An operator takes the conversation: the bot stops answering it (`status`
    `agent`, `operator`: the key's name)."""
    return await _operate(service, request, conversation_id, "take")


@router.post(
    "/v1/conversations/{conversation_id}/messages",
    response_model=ConversationOut,
    **scoped("admin", _OPERATOR),
)
async def reply_to_conversation(
    conversation_id: ConversationPath,
    body: OperatorReplyIn,
    request: Request,
    service: ServiceDep,
) -> ConversationOut:
    """The operator's reply to the visitor (taking the conversation when nobody has it)."""
    return await _operate(service, request, conversation_id, "reply", body.text)


@router.post(
    "/v1/conversations/{conversation_id}/release",
    response_model=ConversationOut,
    **scoped("admin", _OPERATOR),
)
async def release_conversation(
    conversation_id: ConversationPath, request: Request, service: ServiceDep
) -> ConversationOut:
    """Hand the conversation back to the bot."""
    return await _operate(service, request, conversation_id, "release")


@router.post(
    "/v1/conversations/{conversation_id}/close",
    response_model=ConversationOut,
    **scoped("admin", _OPERATOR),
)
async def close_conversation(
    conversation_id: ConversationPath, request: Request, service: ServiceDep
) -> ConversationOut:
    """Close the conversation; the visitor's next message starts with the bot again."""
    return await _operate(service, request, conversation_id, "close")


@router.websocket("/v1/assistants/{name}/ws")
async def chat_socket(websocket: WebSocket, name: str) -> None:
    """The widget's connection: JSON frames both ways (see :mod:`aiweb.assistant.live`
    and ``docs/assistant.md``).

    In: ``{"type": "message", "text", "conversation_id"}`` (``null`` starts one) and
    ``{"type": "resume", "conversation_id", "after": seq}`` (after a reconnect). Out:
    ``{"type": "turn", "turn": {…}}`` (the answer to a message, as the REST route's),
    ``{"type": "typing", "typing": bool}``, ``{"type": "message", "message": {…}}`` (every
    new message of the conversation, an operator's too; ``seq`` orders and de-duplicates
    them), ``{"type": "status", "status"}``, ``{"type": "error", "status", "title",
    "detail"}`` (the socket stays open). The key comes as ``?key=`` (a browser cannot set
    headers on a WebSocket) or an ``Authorization`` header; a refused handshake closes
    with ``4000 + the HTTP status``.
    """
    state = websocket.app.state
    token = websocket.query_params.get("key") or request_token(
        websocket.headers.get("authorization"), websocket.headers.get("x-api-key")
    )
    client = websocket.client.host if websocket.client else "unknown"
    service: AssistantService = state.assistants
    origin = websocket.headers.get("origin")
    # accepted before the checks, so a refusal is a close code: a handshake refused before
    # it is accepted reaches a browser as an HTTP 403 and close code 1006, which says
    # nothing (the widget would retry forever)
    await websocket.accept()
    try:
        authorized = await authorize(state, client, token, "chat", origin=origin)
        check_name(name, "assistant name")
        authorized.key.check_target(name)
        await anyio.to_thread.run_sync(service.store.get, name)
    except AiwebError as exc:
        reason = exc.detail.encode()[:120].decode(errors="ignore")  # at most 123 bytes
        await websocket.close(code=4000 + exc.status, reason=reason)
        return
    watching: str | None = None
    forwarder: asyncio.Task[None] | None = None

    async def forward(conversation_id: str, ready: asyncio.Event) -> None:
        async with service.hub.subscribe(conversation_id) as queue:
            ready.set()
            while True:
                await websocket.send_json(await queue.get())

    async def watch(conversation_id: str) -> None:
        nonlocal watching, forwarder
        if watching == conversation_id:
            return
        if forwarder is not None:
            forwarder.cancel()
        ready = asyncio.Event()
        forwarder = asyncio.create_task(forward(conversation_id, ready))
        await ready.wait()
        watching = conversation_id

    try:
        while True:
            try:
                frame = await websocket.receive_json()
            except (ValueError, KeyError):
                await websocket.send_json(_socket_error(422, "a frame must be a JSON object"))
                continue
            try:
                await _socket_frame(websocket, authorized, client, name, frame, watch)
            except AiwebError as exc:
                await websocket.send_json(_socket_error(exc.status, exc.detail))
            except WebSocketDisconnect:
                raise
            except Exception as exc:  # logged; the socket stays usable
                log.exception("assistant socket: frame failed")
                await websocket.send_json(_socket_error(500, f"{type(exc).__name__}: {exc}"))
    except WebSocketDisconnect:
        pass
    finally:
        if forwarder is not None:
            forwarder.cancel()


async def _socket_frame(
    websocket: WebSocket,
    authorized: Authorized,
    client: str,
    name: str,
    frame: Any,
    watch: Callable[[str], Awaitable[None]],
) -> None:
    state = websocket.app.state
    service: AssistantService = state.assistants
    if not isinstance(frame, dict) or frame.get("type") not in ("message", "resume", "feedback"):
        raise InvalidInputError('a frame is {"type": "message" | "resume" | "feedback", …}')
    conversation_id = frame.get("conversation_id")
    if conversation_id is not None and not (
        isinstance(conversation_id, str) and _CONVERSATION_ID.fullmatch(conversation_id)
    ):
        raise InvalidInputError("conversation_id must be 32 hex characters or null")
    if frame["type"] == "feedback":
        try:
            given = TurnFeedbackIn.model_validate(
                {k: v for k, v in frame.items() if k in ("helpful", "intent")}
            )
        except ValueError:
            raise InvalidInputError(
                'feedback is {"type": "feedback", "conversation_id", "seq", "helpful": '
                'true|false and/or "intent"}'
            ) from None
        seq = frame.get("seq")
        if conversation_id is None or not isinstance(seq, int) or not 1 <= seq < 2**31:
            raise InvalidInputError("feedback needs conversation_id and seq (≥ 1)")
        await _visitor(state, authorized.key, name, conversation_id)
        out = await service.feedback(
            name,
            conversation_id,
            seq,
            helpful=given.helpful,
            intent=given.intent,
            actor=authorized.key.name,
            predictions=state.feedback,
        )
        await websocket.send_json({"type": "feedback", **out})
        return
    if frame["type"] == "resume":
        after = frame.get("after", 0)
        if conversation_id is None or not isinstance(after, int) or after < 0:
            raise InvalidInputError("resume needs conversation_id and after (a seq, ≥ 0)")
        conversation, messages = await anyio.to_thread.run_sync(
            lambda: service.store.messages_after(conversation_id, after, assistant=name)
        )
        await watch(conversation.id)
        for message in messages:
            await websocket.send_json({"type": "message", "message": jsonable(message)})
        await websocket.send_json({"type": "status", "status": conversation.status})
        return
    text = frame.get("text")
    if not isinstance(text, str):
        raise InvalidInputError("a message needs text (a string)")
    # every message pays as a REST call would (without auth, only the handshake)
    if authorized.key is not ANONYMOUS:
        await charge_key(state.rate_limiter, authorized.key, client, "chat")
    await _visitor(state, authorized.key, name, conversation_id)
    if conversation_id is not None:
        await watch(conversation_id)
    await websocket.send_json({"type": "typing", "typing": True})
    try:
        turn = await service.message(
            name,
            text,
            conversation_id=conversation_id,
            origin=websocket.headers.get("origin"),
            user_id=None,
        )
    finally:
        await websocket.send_json({"type": "typing", "typing": False})
    await watch(turn.conversation.id)
    await websocket.send_json({"type": "turn", "turn": turn_out(turn)})


def _socket_error(status: int, detail: str) -> dict[str, Any]:
    return {"type": "error", "status": status, "title": HTTPStatus(status).phrase, "detail": detail}


def jsonable(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as a visitor's page shows it."""
    return VisitorMessage.model_validate(message).model_dump(mode="json")


@router.api_route("/widget.js", methods=["GET", "HEAD"], include_in_schema=False)
async def widget() -> FileResponse:
    """The chat widget a web page embeds with one script tag (``docs/assistant.md``): no
    key needed, cached for 5 minutes."""
    return FileResponse(
        WIDGET,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )
