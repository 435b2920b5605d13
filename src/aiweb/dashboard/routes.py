"""The dashboard's pages: server-rendered HTML (Jinja2) made live with htmx.

Each page gathers its data from the services the app built (the registry, monitoring,
jobs, keys, the audit log, the tasks' services) and renders a template; sessions, CSRF
checks, flash messages and rendering are :mod:`aiweb.dashboard.web`'s. Every page needs
a dashboard session; every POST checks the session's CSRF token and, when the browser
sends one, that ``Origin`` is this server. Actions go through the same services as the
API and are audited with the actor ``dashboard:<name>``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from aiweb.api.problems import request_id
from aiweb.assistant.service import AssistantService
from aiweb.classification.explain import ExplanationService
from aiweb.classification.schemas import ExplainRequest
from aiweb.classification.service import PredictionService
from aiweb.dashboard import views
from aiweb.dashboard.session import DashboardSession
from aiweb.dashboard.throttle import LoginThrottle, account_scope, address_scope
from aiweb.dashboard.users import UserService
from aiweb.dashboard.web import (
    HERE,
    SessionDep,
    app_state,
    checked_form,
    end_session,
    enter,
    field,
    install_handlers,
    is_htmx,
    issue_session,
    leave,
    login_form,
    redirect_with_flash,
    render,
    render_error,
    render_login,
    safe_next,
)
from aiweb.documents.pii import PLACEHOLDERS
from aiweb.documents.service import Document, DocumentService
from aiweb.entities.screening import (
    NAME_PLACEHOLDER,
    ScreeningJobSpec,
    ScreeningRequest,
    pii_spans,
)
from aiweb.entities.service import EntityService
from aiweb.errors import (
    AiwebError,
    ForbiddenError,
    JobNotFound,
    NotFoundError,
    UnauthorizedError,
    UploadedDocumentNotFound,
)
from aiweb.images.service import ImageService
from aiweb.jobs.env import JobEnv
from aiweb.jobs.service import JobService
from aiweb.monitoring.metrics import DASHBOARD_LOGIN_FAILURES
from aiweb.monitoring.stats import PredictionStats
from aiweb.names import INT32_MAX
from aiweb.recommendations.service import RecommendationService
from aiweb.registry.entities import PRODUCTION
from aiweb.registry.service import RegistryService
from aiweb.rollout.router import RolloutRouter
from aiweb.rollout.service import RolloutService
from aiweb.security.audit import AuditLog
from aiweb.security.auth import client_address
from aiweb.security.keys import SCOPES, KeyService, parse_duration
from aiweb.vision.schemas import MODEL_TASKS as VISION_TASKS
from aiweb.vision.service import VisionService

log = logging.getLogger("aiweb.dashboard")

CLASSIFICATION_TASKS = ("text-classification",)
RECOMMENDATION_TASKS = ("recommendation",)
ENTITY_TASKS = ("token-classification",)
SCREEN_JOB = "screen"
SCREENING_DOCUMENTS = 200
"""Documents the screening page lists (newest first): the most one screening ranks."""
RECENT_SCREENINGS = 10
ACTIVE_JOB_STATES = ("pending", "running")
AUDIT_PAGE = 50


DOCUMENT_UPLOAD = "/documents/upload"
VISION_PLAYGROUND = "/vision"
"""The vision playground: the page (GET) and its image upload (POST)."""
#: the dashboard's forms that upload files (multipart, streamed by the input limits)
FILE_FORM_PATHS = frozenset({DOCUMENT_UPLOAD, VISION_PLAYGROUND})


def install(app: FastAPI) -> None:
    """Mount the dashboard on ``app``: static files, pages and its error handlers."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="dashboard-static")
    app.include_router(router)
    install_handlers(app)


def _stats(state: Any) -> PredictionStats:
    """Traffic and accuracy from the prediction log and feedback."""
    return PredictionStats(state.dashboard_db)


router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


# -- login ---------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    """The login form (admin API key, or username and password)."""
    return _login_form(request, safe_next(next))


def _login_form(
    request: Request, next_path: str, error: str | None = None, status: int = 200
) -> Response:
    """The login page with a fresh double-submit CSRF token (cookie and hidden field)."""
    context = {"next": next_path, "error": error}
    return render_login(request, "login.html", context, status_code=status)


def _readable(value: str) -> bool:
    """Whether a login field can reach the database (no NUL, no lone surrogate)."""
    return "\x00" not in value and not any("\ud800" <= c <= "\udfff" for c in value)


async def _login_failed(
    request: Request,
    throttle: LoginThrottle,
    scopes: list[str],
    reason: str,
    account: str,
) -> None:
    """Count a failed login (per scope, and in the metrics) and log it."""
    counts = await anyio.to_thread.run_sync(throttle.failed, scopes)
    DASHBOARD_LOGIN_FAILURES.labels(reason).inc()
    log.warning(
        "dashboard login failed: %s (account %r, address %s, consecutive failures %s)",
        reason,
        account,
        client_address(request),
        ", ".join(f"{scope}={n}" for scope, n in counts.items()),
    )


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the credentials, then set the session cookie and go to ``next``.

    Failed logins are throttled per account and per client address with growing delays
    (:mod:`aiweb.dashboard.throttle`): an attempt while its account or address waits gets
    429 with ``Retry-After``, unchecked."""
    state = app_state(request)
    form = await login_form(request)
    next_path = safe_next(field(form, "next", "/"))
    token = field(form, "token")
    username = field(form, "username")
    password = form.get("password")
    if not all(
        _readable(v) for v in (token, username, password if isinstance(password, str) else "")
    ):
        DASHBOARD_LOGIN_FAILURES.labels("incomplete").inc()
        return _login_form(request, next_path, "The form holds characters no login has.", 422)
    throttle = LoginThrottle(state.dashboard_db, state.settings.dashboard)
    address = client_address(request)
    scopes = [address_scope(address)]
    if not token and username:
        scopes.append(account_scope(username))
    # for the log: a key's public prefix only (never its secret, nor a mistyped password)
    account = (
        (f"key:{token[:16]}" if token.startswith("aiw_") else "key:(malformed)")
        if token
        else f"user:{username[:128]}"
    )
    refusal = await anyio.to_thread.run_sync(throttle.admit, scopes)
    if refusal is not None:
        DASHBOARD_LOGIN_FAILURES.labels("throttled").inc()
        log.warning(
            "dashboard login refused unchecked: %s waits %d s (account %r, address %s)",
            refusal.scope,
            refusal.retry_after_s,
            account,
            address,
        )
        what = "this account" if refusal.scope.startswith("user") else "your address"
        response = _login_form(
            request,
            next_path,
            f"Too many failed logins for {what}; wait {refusal.retry_after_s}s.",
            429,
        )
        response.headers["Retry-After"] = str(refusal.retry_after_s)
        return response
    kind: str
    name: str
    stamp = ""
    if token:
        keys: KeyService = state.keys
        try:
            key = await anyio.to_thread.run_sync(keys.authenticate, token)
        except UnauthorizedError:
            await _login_failed(request, throttle, scopes, "bad_key", account)
            return _login_form(request, next_path, "That API key is not valid.", 401)
        if not key.allows("admin"):
            await _login_failed(request, throttle, scopes, "not_admin", f"key:{key.name}")
            return _login_form(
                request,
                next_path,
                f"API key {key.name!r} has scopes {', '.join(key.scopes)}; the dashboard "
                "needs an admin key.",
                403,
            )
        kind, name = "key", key.name
    elif username and isinstance(password, str) and password:
        users: UserService = state.dashboard_users
        user = await anyio.to_thread.run_sync(users.verify, username, password)
        if user is None:
            await _login_failed(request, throttle, scopes, "bad_password", account)
            return _login_form(request, next_path, "Wrong username or password.", 401)
        kind, name, stamp = "user", user.username, user.stamp
    else:
        await _login_failed(request, throttle, scopes, "incomplete", account)
        return _login_form(
            request, next_path, "Enter an admin API key, or a username and password.", 422
        )
    await anyio.to_thread.run_sync(throttle.succeeded, scopes[1:])  # the account's count
    value, session = await issue_session(request, "key" if kind == "key" else "user", name, stamp)
    audit: AuditLog = state.audit
    await anyio.to_thread.run_sync(
        lambda: audit.record(
            session.actor, "dashboard.login", f"{kind}:{name}", request_id=request_id(request)
        )
    )
    return enter(request, value, next_path)


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    """End the session: closed server-side (a copy of the cookie no longer works) and the
    cookie dropped."""
    await checked_form(request, session)
    await end_session(request, session)
    return leave(request)


# -- overview and models ---------------------------------------------------------------------


@router.get("/")
async def overview(request: Request, session: SessionDep) -> Response:
    """Requests, latency and errors overall and per model; drift badges."""
    state = app_state(request)

    def gather() -> dict[str, Any]:
        stats = _stats(state).traffic()
        return {
            "http": views.http_summary(),
            "traffic": stats,
            "rows": views.model_rows(state.registry, state.drift, stats),
            "active_jobs": state.job_env.jobs.page(status="running", limit=1, offset=0).total,
        }

    return render(request, "overview.html", await anyio.to_thread.run_sync(gather), session=session)


@router.get("/models")
async def models_page(request: Request, session: SessionDep) -> Response:
    """Every registered model with its production version and drift."""
    state = app_state(request)

    def gather() -> dict[str, Any]:
        stats = _stats(state).traffic()
        return {"rows": views.model_rows(state.registry, state.drift, stats)}

    return render(request, "models.html", await anyio.to_thread.run_sync(gather), session=session)


@router.get("/models/{name}")
async def model_page(request: Request, name: str, session: SessionDep) -> Response:
    """A model's versions, aliases (promote, roll back), live performance and drift, and
    its running rollout, if any (a badge linking to the rollout page)."""
    state = app_state(request)

    def gather() -> dict[str, Any]:
        context = views.model_detail(
            state.registry, state.drift, state.feedback, _stats(state), name
        )
        return {
            **context,
            "rollout": views.running_rollout(state.rollouts, name),
            "vision_playground": context["model"].task in VISION_TASKS,
        }

    try:
        context = await anyio.to_thread.run_sync(gather)
    except AiwebError as exc:
        return render_error(request, session, exc)
    return render(request, "model.html", context, session=session)


@router.get("/models/{name}/versions/{version}")
async def version_page(request: Request, name: str, version: int, session: SessionDep) -> Response:
    """A version's evaluation report, confusion matrix heatmap and lineage."""
    registry: RegistryService = app_state(request).registry
    try:
        context = await anyio.to_thread.run_sync(
            lambda: views.version_detail(registry, name, version)
        )
    except AiwebError as exc:
        return render_error(request, session, exc)
    return render(request, "version.html", context, session=session)


@router.post("/models/{name}/promote")
async def promote(request: Request, name: str, session: SessionDep) -> Response:
    """Point an alias (default ``production``) at a version."""
    form = await checked_form(request, session)
    registry: RegistryService = app_state(request).registry
    alias = field(form, "alias", PRODUCTION) or PRODUCTION
    try:
        version = int(field(form, "version"))
        if not 1 <= version <= INT32_MAX:
            raise ValueError(version)
        event = await anyio.to_thread.run_sync(
            lambda: registry.promote(
                name, version, alias, actor=session.actor, request_id=request_id(request)
            )
        )
    except ValueError:
        return redirect_with_flash(request, f"/models/{name}", "error", "Choose a version.")
    except AiwebError as exc:
        return redirect_with_flash(request, f"/models/{name}", "error", exc.detail)
    await registry.alias_moved(name)  # this process serves the new target at once
    return redirect_with_flash(
        request,
        f"/models/{name}",
        "ok",
        f"{name}@{alias} now serves version {event.to_version} (was {event.from_version}).",
    )


@router.post("/models/{name}/rollback")
async def rollback(request: Request, name: str, session: SessionDep) -> Response:
    """Move an alias back to the version it pointed at before."""
    form = await checked_form(request, session)
    registry: RegistryService = app_state(request).registry
    alias = field(form, "alias", PRODUCTION) or PRODUCTION
    try:
        event = await anyio.to_thread.run_sync(
            lambda: registry.rollback(
                name, alias, actor=session.actor, request_id=request_id(request)
            )
        )
    except AiwebError as exc:
        return redirect_with_flash(request, f"/models/{name}", "error", exc.detail)
    await registry.alias_moved(name)
    return redirect_with_flash(
        request,
        f"/models/{name}",
        "ok",
        f"Rolled {name}@{alias} back to version {event.to_version} (from {event.from_version}).",
    )


# -- rollouts --------------------------------------------------------------------------------


async def _rollout_context(request: Request, name: str) -> dict[str, Any]:
    """The rollout page's data (:func:`views.rollout_detail`), with the API's address for
    the command that starts one.

    Raises:
        ModelNotFound.
    """
    state = app_state(request)
    context = await anyio.to_thread.run_sync(
        lambda: views.rollout_detail(state.registry, state.rollouts, name)
    )
    return {**context, "api_base": str(request.base_url).rstrip("/")}


@router.get("/models/{name}/rollout")
async def rollout_page(request: Request, name: str, session: SessionDep) -> Response:
    """The model's latest rollout: state, traffic over time, both versions side by side,
    the gates, the timeline of decisions; promote and abort while it runs. Without one,
    how to start one."""
    try:
        context = await _rollout_context(request, name)
    except AiwebError as exc:
        return render_error(request, session, exc)
    return render(request, "rollout.html", context, session=session)


@router.get("/models/{name}/rollout/live")
async def rollout_live(request: Request, name: str, session: SessionDep) -> Response:
    """The rollout's numbers alone (polled by htmx every few seconds while it runs)."""
    try:
        context = await _rollout_context(request, name)
    except AiwebError as exc:
        return render_error(request, session, exc)
    if context["rollout"] is None:
        return Response(status_code=204)  # htmx keeps what it shows
    return render(request, "_rollout.html", context, session=session)


async def _rollout_action(
    request: Request, name: str, session: DashboardSession, verb: Literal["promote", "abort"]
) -> Response:
    """Promote or abort the rollout the page showed (form field ``rollout``: its id), as
    ``POST /v1/models/{name}/rollout/{verb}`` does, audited with the dashboard user; then
    this process follows the change at once (the API route's ``_after_change``)."""
    form = await checked_form(request, session)
    state = app_state(request)
    rollouts: RolloutService = state.rollouts
    registry: RegistryService = state.registry
    page = f"/models/{name}/rollout"
    shown = field(form, "rollout")
    running = await anyio.to_thread.run_sync(rollouts.active)
    current = next((r for r in running if r.model == name), None)
    if current is None:
        return redirect_with_flash(
            request, page, "error", f"No rollout of {name} is running: nothing to {verb}."
        )
    if not shown or shown != current.id:
        return redirect_with_flash(
            request,
            page,
            "error",
            "This is not the rollout the page showed (it changed meanwhile): "
            f"review it and {verb} again.",
        )
    act = rollouts.promote if verb == "promote" else rollouts.abort
    try:
        report = await anyio.to_thread.run_sync(
            lambda: act(name, actor=session.actor, request_id=request_id(request))
        )
    except AiwebError as exc:
        return redirect_with_flash(request, page, "error", exc.detail)
    rollout_router: RolloutRouter = state.rollout_router
    await registry.alias_moved(name)  # this process serves the new production at once
    await rollout_router.follow(registry.alias_moved)
    if verb == "promote":
        text = (
            f"Promoted {name} v{report['candidate']} to production "
            f"(was v{report['baseline']}); the rollout ended."
        )
    else:
        text = (
            f"Aborted the rollout of {name} v{report['candidate']}: all traffic is back "
            f"on v{report['baseline']}."
        )
    return redirect_with_flash(request, page, "ok", text)


@router.post("/models/{name}/rollout/promote")
async def rollout_promote(request: Request, name: str, session: SessionDep) -> Response:
    """Make the running rollout's candidate ``production`` now, whatever its gates say,
    and end the rollout."""
    return await _rollout_action(request, name, session, "promote")


@router.post("/models/{name}/rollout/abort")
async def rollout_abort(request: Request, name: str, session: SessionDep) -> Response:
    """End the running rollout: all traffic back on the baseline (still ``production``)."""
    return await _rollout_action(request, name, session, "abort")


# -- playground ------------------------------------------------------------------------------


@router.get("/playground")
async def playground(request: Request, session: SessionDep, model: str = "") -> Response:
    """Type a text, see the label and the scores of each production classifier, or the
    entities a token-classification model finds in it; type a user id, see a
    recommendation model's top 10."""
    return await _playground_page(request, session, selected=model)


async def _playground_page(
    request: Request,
    session: DashboardSession,
    *,
    status_code: int = 200,
    selected: str = "",
    text: str = "",
    result: dict[str, Any] | None = None,
    recs: dict[str, Any] | None = None,
    explanation: dict[str, Any] | None = None,
    row_text: str = "",
    tabular_result: dict[str, Any] | None = None,
    entities_text: str = "",
    entities_result: dict[str, Any] | None = None,
) -> Response:
    """The whole playground page (a GET, or a POST from a browser without JavaScript)."""
    registry: RegistryService = app_state(request).registry
    models = await anyio.to_thread.run_sync(registry.list_models)
    context = {
        "models": views.servable(models, CLASSIFICATION_TASKS),
        "recommenders": views.servable(models, RECOMMENDATION_TASKS),
        "selected": selected,
        "text": text,
        "result": result,
        "recs": recs,
        "explanation": explanation,
        "tabular_models": await anyio.to_thread.run_sync(
            lambda: views.tabular_playground_models(registry, models)
        ),
        "row_text": row_text,
        "tabular_result": tabular_result,
        "entity_models": views.servable(models, ENTITY_TASKS),
        "entities_text": entities_text,
        "entities_result": entities_result,
    }
    return render(request, "playground.html", context, session=session, status_code=status_code)


@router.post("/playground")
async def playground_predict(request: Request, session: SessionDep) -> Response:
    """Classify the posted text; htmx swaps in the result, else the whole page renders."""
    form = await checked_form(request, session)
    state = app_state(request)
    model = field(form, "model")
    text = str(form.get("text", ""))
    result: dict[str, Any]
    predictions: PredictionService = state.predictions
    status = 200
    try:
        if not model:
            raise ValueError("Choose a model.")
        if not text.strip():
            raise ValueError("Type a text to classify.")
        body = await predictions.predict(model, [text])
        prediction = body["predictions"][0]
        scores = sorted(prediction["scores"].items(), key=lambda kv: -kv[1])
        result = {
            "ok": True,
            "model": body.get("model", model),
            "version": body.get("version"),
            # the explanation (asked for by the page, after this answer) is of this version
            "ref": f"{body.get('model', model)}:{body.get('version')}",
            "text": text,
            "label": prediction["label"],
            "id": prediction["id"],
            "scores": scores,
            "chart": {
                "type": "bar",
                "labels": [k for k, _ in scores],
                "series": [{"name": "score", "values": [round(v, 4) for _, v in scores]}],
                "max": 1,
                "horizontal": True,
            },
        }
    except ValueError as exc:
        result, status = {"ok": False, "error": str(exc)}, 422
    except AiwebError as exc:
        result, status = {"ok": False, "error": exc.detail}, exc.status
    if is_htmx(request):
        # htmx swaps only 2xx answers by default: the error text comes back with 200
        return render(request, "_prediction.html", {"result": result}, session=session)
    return await _playground_page(
        request, session, status_code=status, selected=model, text=text, result=result
    )


@router.post("/playground/explain")
async def playground_explain(request: Request, session: SessionDep) -> Response:
    """Why the classifier answered what it did: the text with its words tinted by weight,
    the top contributions as bars, exact or approximate in words.

    The prediction's fragment asks for it once it is shown (htmx, on load; a button
    without JavaScript), with the predicted version's reference (``name:version``), so
    the predict path computes nothing for it. Form fields: ``model``, ``text``, and
    ``target`` (a class; default the answered one). Errors show as a message (200 to
    htmx, as for predictions; the whole page with the status otherwise)."""
    form = await checked_form(request, session)
    state = app_state(request)
    model = field(form, "model")
    text = str(form.get("text", ""))
    target = field(form, "target") or None
    explanation: dict[str, Any]
    status = 200
    try:
        if not model:
            raise ValueError("Choose a model.")
        if not text.strip():
            raise ValueError("Type a text to explain.")
        explanations: ExplanationService = state.explanations
        request_body = ExplainRequest(inputs=[text], target=target, top_k=0)
        body = await explanations.explain(model, request_body)
        explanation = {
            "ok": True,
            "model": body["model"],
            "version": body["version"],
            "ref": f"{body['model']}:{body['version']}",
            "text": text,
            **views.explanation_view(text, body["explanations"][0]),
        }
    except ValidationError as exc:
        message = "; ".join(str(e["msg"]) for e in exc.errors())
        explanation, status = {"ok": False, "error": message}, 422
    except ValueError as exc:
        explanation, status = {"ok": False, "error": str(exc)}, 422
    except AiwebError as exc:
        explanation, status = {"ok": False, "error": exc.detail}, exc.status
    if is_htmx(request):
        return render(request, "_explanation.html", {"explanation": explanation}, session=session)
    return await _playground_page(
        request,
        session,
        status_code=status,
        selected=model.split(":")[0],
        text=text,
        explanation=explanation,
    )


@router.post("/playground/tabular")
async def playground_tabular(request: Request, session: SessionDep) -> Response:
    """Score one JSON row with a tabular model and show why: the answer, then a waterfall
    of the columns' contributions from the base value to the model's margin
    (:func:`views.tabular_answer`). Form fields: ``model``, ``row`` (a JSON object),
    ``target`` (a class; default the answered one). Errors show as a message (200 to
    htmx, as for predictions; the whole page with the status otherwise)."""
    form = await checked_form(request, session)
    model = field(form, "model")
    row_text = str(form.get("row", ""))
    target = field(form, "target") or None
    result: dict[str, Any]
    status = 200
    try:
        result = await views.tabular_answer(app_state(request).tabular, model, row_text, target)
    except ValueError as exc:
        result, status = {"ok": False, "error": str(exc)}, 422
    except AiwebError as exc:
        result, status = {"ok": False, "error": exc.detail}, exc.status
    if is_htmx(request):
        return render(request, "_explanation.html", {"explanation": result}, session=session)
    return await _playground_page(
        request,
        session,
        status_code=status,
        selected=model.split(":")[0].split("@")[0],
        row_text=row_text,
        tabular_result=result,
    )


@router.post("/playground/recommend")
async def playground_recommend(request: Request, session: SessionDep) -> Response:
    """Recommendations for a user id, with their reasons and titles (htmx fragment, or the
    whole page without JavaScript). With the ``explain`` box ticked, each item also says
    "because you liked …": the titles of the user's history items that add most to its
    score (the route's ``?explain=true``)."""
    form = await checked_form(request, session)
    state = app_state(request)
    model = field(form, "model")
    user_id = field(form, "user_id")
    explain = field(form, "explain") in ("1", "on", "true")
    recs: dict[str, Any]
    status = 200
    try:
        if not model:
            raise ValueError("Choose a model.")
        if not user_id:
            raise ValueError("Type a user id.")
        service: RecommendationService = state.recommendations
        body = await service.recommend(model, user_id, n=10, explain=explain)
        items = body["items"]
        wanted = {i["item_id"] for i in items}
        wanted.update(b["item_id"] for i in items for b in i.get("because", ()))
        titles = await anyio.to_thread.run_sync(service.store.item_titles, sorted(wanted))
        recs = {
            "ok": True,
            "model": body["model"],
            "version": body["version"],
            "user_id": user_id,
            "explain": explain,
            "items": [
                {
                    **i,
                    "title": titles.get(i["item_id"], ""),
                    "liked": [
                        titles.get(b["item_id"]) or b["item_id"] for b in i.get("because", ())
                    ],
                }
                for i in items
            ],
            "chart": {
                "type": "bar",
                "labels": [titles.get(i["item_id"]) or i["item_id"] for i in items],
                "series": [{"name": "score", "values": [round(i["score"], 4) for i in items]}],
                "horizontal": True,
            },
        }
    except ValueError as exc:
        recs, status = {"ok": False, "error": str(exc)}, 422
    except AiwebError as exc:
        recs, status = {"ok": False, "error": exc.detail}, exc.status
    if is_htmx(request):
        return render(request, "_recommendations.html", {"recs": recs}, session=session)
    return await _playground_page(request, session, status_code=status, recs=recs)


@router.post("/playground/entities")
async def playground_entities(request: Request, session: SessionDep) -> Response:
    """The entities a token-classification model finds in the posted text, through the
    predict route's service (logged and metered as an API call): the text with one
    ``<mark>`` per entity, coloured by type with a legend, and a table of the entities
    (:func:`views.entities_view`; the text is cut at the answer's offsets and every piece
    escaped by the template). Form fields: ``model``, ``text``. Errors show as a message
    (200 to htmx, as for predictions; the whole page with the status otherwise)."""
    form = await checked_form(request, session)
    model = field(form, "model")
    text = str(form.get("text", ""))
    result: dict[str, Any]
    status = 200
    try:
        if not model:
            raise ValueError("Choose a model.")
        if not text.strip():
            raise ValueError("Type a text to find entities in.")
        service: EntityService = app_state(request).entities
        body = await service.predict(model, [text])
        prediction = body["predictions"][0]
        result = {
            "ok": True,
            "model": body["model"],
            "version": body["version"],
            "id": prediction["id"],
            **views.entities_view(text, prediction["entities"]),
        }
    except ValueError as exc:
        result, status = {"ok": False, "error": str(exc)}, 422
    except AiwebError as exc:
        result, status = {"ok": False, "error": exc.detail}, exc.status
    if is_htmx(request):
        return render(request, "_entities.html", {"entities": result}, session=session)
    return await _playground_page(
        request,
        session,
        status_code=status,
        selected=model,
        entities_text=text,
        entities_result=result,
    )


# -- vision playground -----------------------------------------------------------------------


async def _vision_page(
    request: Request,
    session: DashboardSession,
    *,
    status_code: int = 200,
    selected: str = "",
    filename: str = "",
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> Response:
    """The whole vision playground page, with an answer (``result``:
    :func:`views.vision_view`) or what went wrong (``error``)."""
    state = app_state(request)
    registry: RegistryService = state.registry
    models = await anyio.to_thread.run_sync(registry.list_models)
    limits = state.settings.limits
    context = {
        "models": views.servable(models, VISION_TASKS),
        "selected": selected,
        "filename": filename,
        "result": result,
        "error": error,
        "max_image_mib": limits.max_image_bytes / 2**20,
        "max_megapixels": limits.max_image_pixels / 1_000_000,
    }
    return render(request, "vision.html", context, session=session, status_code=status_code)


@router.get(VISION_PLAYGROUND)
async def vision_playground(
    request: Request, session: SessionDep, model: Annotated[str, Query(max_length=256)] = ""
) -> Response:
    """Upload or drop an image, choose a vision model (faces, people, text), see the
    answer drawn on the image and listed in a table."""
    return await _vision_page(request, session, selected=model)


@router.post(VISION_PLAYGROUND)
async def vision_predict(request: Request, session: SessionDep) -> Response:
    """Answer the uploaded image (form fields ``model`` and ``image``, multipart: streamed
    by the input limits, :data:`FILE_FORM_PATHS`) with the model, through the predict
    route's service (:func:`views.vision_answer`), and show the page with the overlay,
    the image's size and sha256, and the table of detections or lines of text. Nothing
    of the image is kept. A refused file (more than ``limits.max_image_bytes``, not a
    JPEG/PNG/WebP image, truncated, a pixel bomb …) shows its message with its status
    (413, 415, 422)."""
    state = app_state(request)
    form = await checked_form(request, session)
    model = field(form, "model")
    upload = form.get("image")
    filename = ""
    result: dict[str, Any] | None = None
    error: str | None = None
    status = 200
    try:
        if not model:
            raise ValueError("Choose a model.")
        if not isinstance(upload, UploadFile) or not (upload.filename or upload.size):
            raise ValueError("Choose an image to upload: a JPEG, PNG or WebP file.")
        filename = (upload.filename or "")[:255]
        images: ImageService = state.images
        data = await anyio.to_thread.run_sync(images.read_upload, upload.file)
        vision: VisionService = state.vision
        result = await views.vision_answer(vision, model, data, upload.content_type or "")
    except ValueError as exc:
        error, status = str(exc), 422
    except AiwebError as exc:
        error, status = exc.detail, exc.status
    finally:
        await form.close()
    return await _vision_page(
        request,
        session,
        status_code=status,
        selected=model,
        filename=filename,
        result=result,
        error=error,
    )


# -- resume screening ------------------------------------------------------------------------


def _allows(state: Any, session: DashboardSession, scope: str) -> bool:
    """Whether the session may do what the API allows keys with ``scope`` (``train``:
    upload documents, start jobs): a key session when its key has the scope (an admin
    key has every scope); a dashboard user always (users administer the server)."""
    if session.kind != "key":
        return True
    keys: KeyService = state.keys
    try:
        return keys.get(session.name).allows(scope)
    except NotFoundError:
        return False


def _checked_scope(state: Any, session: DashboardSession, scope: str) -> None:
    """Raise :class:`ForbiddenError` (403) unless the session may use ``scope``."""
    if not _allows(state, session, scope):
        raise ForbiddenError(f"this needs an API key with the scope {scope!r}")


def _screening_context(state: Any) -> dict[str, Any]:
    """What the screening page lists: the uploaded documents (newest
    :data:`SCREENING_DOCUMENTS`), the skills models (token-classification models with a
    production version), the recent ``screen`` jobs and the upload limits."""
    documents: DocumentService = state.documents
    registry: RegistryService = state.registry
    docs, total = documents.list(limit=SCREENING_DOCUMENTS, offset=0)
    jobs = state.job_env.jobs.page(status=None, type_=SCREEN_JOB, limit=RECENT_SCREENINGS, offset=0)
    limits = state.settings.limits
    return {
        "documents": docs,
        "documents_total": total,
        "skill_models": views.servable(registry.list_models(), ENTITY_TASKS),
        "screenings": jobs.jobs,
        "max_document_mb": limits.max_document_bytes / 1_000_000,
        "max_document_pages": limits.max_document_pages,
    }


async def _screening_page(
    request: Request,
    session: DashboardSession,
    *,
    status_code: int = 200,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    upload_errors: list[str] | None = None,
    uploaded: list[Document] | None = None,
) -> Response:
    """The whole screening page, with what the user typed (``form``) and what went wrong."""
    state = app_state(request)
    context = await anyio.to_thread.run_sync(_screening_context, state)
    context.update(
        {
            "form": form or {"redact_pii": True, "document_ids": None},
            "error": error,
            "upload_errors": upload_errors or [],
            "uploaded": uploaded or [],
        }
    )
    return render(request, "screening.html", context, session=session, status_code=status_code)


@router.get("/screening")
async def screening_page(request: Request, session: SessionDep) -> Response:
    """Resume screening: upload CVs, paste a job description, choose the skills model,
    start a ``screen`` job; the recent screenings link to their rankings."""
    return await _screening_page(request, session)


@router.post(DOCUMENT_UPLOAD)
async def upload_documents(request: Request, session: SessionDep) -> Response:
    """Upload one or more CVs (form field ``file``, repeated; ``redact_pii``) through the
    service of ``POST /v1/documents``, with its limits: its 413, 415 and 422 answers show
    as a message per file (the page answers with the first one's status), uploads that
    worked are kept. All uploaded: back to the screening page (303)."""
    state = app_state(request)
    form = await checked_form(request, session)
    try:
        _checked_scope(state, session, "train")
        documents: DocumentService = state.documents
        redact = field(form, "redact_pii") in ("1", "on", "true")
        files = [
            f
            for f in form.getlist("file")
            if isinstance(f, UploadFile) and (f.filename or (f.size or 0) > 0)
        ]
        if not files:
            return await _screening_page(
                request, session, status_code=422, upload_errors=["Choose a file to upload."]
            )
        uploaded: list[Document] = []
        errors: list[str] = []
        status = 200
        for upload in files:
            try:
                store = functools.partial(
                    documents.upload,
                    upload.file,
                    upload.filename,
                    redact_pii=redact,
                    actor=session.actor,
                    request_id=request_id(request),
                )
                uploaded.append(await anyio.to_thread.run_sync(store))
            except AiwebError as exc:
                errors.append(f"{upload.filename or 'the file'}: {exc.detail}")
                status = status if status != 200 else exc.status
    except AiwebError as exc:
        return await _screening_page(
            request, session, status_code=exc.status, upload_errors=[exc.detail]
        )
    finally:
        await form.close()
    if errors:
        return await _screening_page(
            request, session, status_code=status, upload_errors=errors, uploaded=uploaded
        )
    names = ", ".join(d.name for d in uploaded)
    return redirect_with_flash(
        request, "/screening", "ok", f"Uploaded {len(uploaded)} document(s): {names}."
    )


@router.post("/documents/{document_id}/delete")
async def delete_document(request: Request, document_id: str, session: SessionDep) -> Response:
    """Delete an uploaded document, its text and its file, through the service of
    ``DELETE /v1/documents/{id}`` (audited as ``document.delete``; the API key's scope
    ``train``), then back to the screening page with a message."""
    state = app_state(request)
    form = await checked_form(request, session)
    await form.close()
    documents: DocumentService = state.documents
    try:
        _checked_scope(state, session, "train")
        gone = await anyio.to_thread.run_sync(
            lambda: documents.delete(
                document_id[:64], actor=session.actor, request_id=request_id(request)
            )
        )
    except AiwebError as exc:
        return redirect_with_flash(request, "/screening", "error", exc.detail)
    return redirect_with_flash(request, "/screening", "ok", f"Deleted {gone.name}.")


def _validation_message(exc: ValidationError) -> str:
    """A pydantic error as one readable line: ``field: message; …``."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e["loc"]).replace("_", " ")
        parts.append(f"{where}: {e['msg']}" if where else str(e["msg"]))
    return "; ".join(parts)


@router.post("/screening")
async def start_screening(request: Request, session: SessionDep) -> Response:
    """Start a ``screen`` job as ``POST /v1/screenings`` does (the same body, checked at
    submit by the job service; audited with the dashboard user), then show its page (303).
    Form fields: ``job_description``, ``document_ids`` (repeated), ``skills_model``,
    ``entities_model`` (empty: none), ``redact_pii``. A refused body renders the page
    again with the message and its status (404 for a document or model that does not
    exist, 422 for the rest)."""
    state = app_state(request)
    form = await checked_form(request, session)
    document_ids = [v for v in form.getlist("document_ids") if isinstance(v, str)]
    description = str(form.get("job_description", ""))
    typed: dict[str, Any] = {
        "job_description": description,
        "skills_model": field(form, "skills_model"),
        "entities_model": field(form, "entities_model"),
        "redact_pii": field(form, "redact_pii") in ("1", "on", "true"),
        "document_ids": document_ids,
    }
    try:
        _checked_scope(state, session, "train")
        if not document_ids:
            raise ValueError("Choose at least one CV.")
        if not description.strip():
            raise ValueError("Paste a job description.")
        if not typed["skills_model"]:
            raise ValueError("Choose a skills model.")
        body = ScreeningRequest(
            job_description=description,
            document_ids=document_ids,
            skills_model=typed["skills_model"],
            entities_model=typed["entities_model"] or None,
            redact_pii=typed["redact_pii"],
        )
        spec = ScreeningJobSpec(type="screen", **body.model_dump())
        jobs: JobService = state.jobs
        job = await anyio.to_thread.run_sync(
            lambda: jobs.submit(spec, actor=session.actor, request_id=request_id(request))
        )
    except ValidationError as exc:
        return await _screening_page(
            request, session, status_code=422, form=typed, error=_validation_message(exc)
        )
    except ValueError as exc:
        return await _screening_page(request, session, status_code=422, form=typed, error=str(exc))
    except AiwebError as exc:
        return await _screening_page(
            request, session, status_code=exc.status, form=typed, error=exc.detail
        )
    return RedirectResponse(f"/screening/jobs/{job.id}", status_code=303)


JobId = Annotated[str, Path(max_length=64)]


def _screening_job(state: Any, job_id: str) -> dict[str, Any]:
    """A ``screen`` job, its ranking (:func:`views.screening_view`, with the documents'
    names) and whether it is still active.

    Raises:
        JobNotFound: no such job, or not a ``screen`` job (404).
    """
    job = state.job_env.jobs.get(job_id)
    if job.type != SCREEN_JOB:
        raise JobNotFound(f"job {job_id[:64]!r} is not a screening")
    documents: DocumentService = state.documents
    names: dict[str, str] = {}
    for c in (job.result or {}).get("candidates") or []:
        document_id = str(c.get("document_id", ""))
        try:
            names[document_id] = documents.get(document_id).name
        except UploadedDocumentNotFound:
            continue
    return {
        "job": job,
        "active": job.status in ACTIVE_JOB_STATES,
        "ranking": views.screening_view(job.result if job.status == "succeeded" else None, names),
        "params": job.params,
    }


async def _cv_context(state: Any, job_id: str, document_id: str) -> dict[str, Any]:
    """One candidate of a finished ``screen`` job: the CV's text with the job's evidence
    highlighted (:func:`views.cv_view`), and why the text shows as it does.

    The evidence's offsets index the document's text as stored (redacted when it was
    uploaded with ``redact_pii``). When the screening ran with ``redact_pii``, its
    contact details (and, with its entities model, person names) show as placeholders
    here too; when those names cannot be found (the model is gone) the text is not
    shown.

    Raises:
        JobNotFound: no such ``screen`` job (404).
        UploadedDocumentNotFound: the document is not a candidate of the job, or it was
            deleted (404).
    """
    context = await anyio.to_thread.run_sync(_screening_job, state, job_id)
    job = context["job"]
    candidate = next(
        (
            c
            for c in (job.result or {}).get("candidates") or []
            if c.get("document_id") == document_id
        ),
        None,
    )
    if job.status != "succeeded" or candidate is None:
        raise UploadedDocumentNotFound(
            f"document {document_id[:64]!r} is not a ranked candidate of this screening"
        )
    documents: DocumentService = state.documents

    def read() -> tuple[Document, list[Any]]:
        document = documents.get(document_id)
        return document, documents.pages(document)

    document, pages = await anyio.to_thread.run_sync(read)
    mask = bool(job.params.get("redact_pii", True))
    entities_ref = ((job.result or {}).get("models") or {}).get("entities")
    hidden: str | None = None
    names: list[list[Any]] = [[] for _ in pages]
    if mask and entities_ref:
        try:
            service: EntityService = state.entities
            loaded = await service.get(str(entities_ref))
            names = await loaded.batcher.submit([p.text for p in pages])
        except AiwebError as exc:
            hidden = (
                f"The names in this CV cannot be masked ({exc.detail}), so its text is not "
                "shown; the evidence is listed below."
            )
    pii = {p.page: pii_spans(p.text, n) for p, n in zip(pages, names, strict=True)} if mask else {}
    placeholders = {**PLACEHOLDERS, "person": NAME_PLACEHOLDER}
    evidence = list(candidate.get("evidence") or [])
    view = views.cv_view(pages, evidence, pii, placeholders)
    return {
        **context,
        "document": document,
        "candidate": candidate,
        "evidence": evidence,
        "cv": view,
        "masked": mask,
        "entities_ref": entities_ref,
        "hidden": hidden,
    }


@router.get("/screening/jobs/{job_id}")
async def screening_job_page(
    request: Request,
    job_id: JobId,
    session: SessionDep,
    document: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """A screening's page: its status while it runs (polled), then the ranked table;
    ``?document=`` also shows that candidate's CV with the evidence highlighted."""
    state = app_state(request)
    try:
        if document:
            context = await _cv_context(state, job_id, document)
        else:
            context = await anyio.to_thread.run_sync(_screening_job, state, job_id)
    except AiwebError as exc:
        return render_error(request, session, exc)
    return render(request, "screening_job.html", context, session=session)


@router.get("/screening/jobs/{job_id}/result")
async def screening_job_result(request: Request, job_id: JobId, session: SessionDep) -> Response:
    """The screening's status or ranking alone (polled by htmx every second while the job
    is pending or running)."""
    try:
        context = await anyio.to_thread.run_sync(_screening_job, app_state(request), job_id)
    except AiwebError as exc:
        return render_error(request, session, exc)
    return render(request, "_screening_result.html", context, session=session)


@router.get("/screening/jobs/{job_id}/documents/{document_id}")
async def screening_cv(
    request: Request, job_id: JobId, document_id: JobId, session: SessionDep
) -> Response:
    """One candidate's CV with the evidence highlighted (htmx fragment; a browser without
    JavaScript goes to the page with ``?document=``)."""
    if not is_htmx(request):
        return RedirectResponse(
            f"/screening/jobs/{job_id}?document={document_id}#cv", status_code=303
        )
    try:
        context = await _cv_context(app_state(request), job_id, document_id)
    except AiwebError as exc:
        context = {"cv_error": exc.detail}
    return render(request, "_screening_cv.html", context, session=session)


# -- jobs ------------------------------------------------------------------------------------


def _jobs_context(env: JobEnv, status: str | None) -> dict[str, Any]:
    page = env.jobs.page(status=status or None, type_=None, limit=50, offset=0)
    active = any(j.status in ACTIVE_JOB_STATES for j in page.jobs)
    return {"jobs": page.jobs, "total": page.total, "active": active, "status": status or ""}


JobStatus = Annotated[str | None, Query(pattern="^(|pending|running|succeeded|failed|cancelled)$")]


@router.get("/jobs")
async def jobs_page(request: Request, session: SessionDep, status: JobStatus = None) -> Response:
    """Jobs, newest first; the table refreshes itself while a job is active."""
    env: JobEnv = app_state(request).job_env
    context = await anyio.to_thread.run_sync(_jobs_context, env, status)
    return render(request, "jobs.html", context, session=session)


@router.get("/jobs/table")
async def jobs_table(request: Request, session: SessionDep, status: JobStatus = None) -> Response:
    """The jobs table alone (polled by htmx every second while a job is active)."""
    env: JobEnv = app_state(request).job_env
    context = await anyio.to_thread.run_sync(_jobs_context, env, status)
    return render(request, "_jobs_table.html", context, session=session)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str, session: SessionDep) -> Response:
    """Cancel a pending or running job."""
    await checked_form(request, session)
    service: JobService = app_state(request).jobs
    try:
        await anyio.to_thread.run_sync(
            lambda: service.cancel(job_id, actor=session.actor, request_id=request_id(request))
        )
    except AiwebError as exc:
        return redirect_with_flash(request, "/jobs", "error", exc.detail)
    return redirect_with_flash(request, "/jobs", "ok", f"Job {job_id[:8]} cancelled.")


# -- assistants and the operator inbox -------------------------------------------------------

INBOX_STATUSES = ("waiting_for_agent", "agent")
"""The conversations the inbox lists: waiting for a person, or with one."""
OPERATOR_ACTIONS = ("take", "reply", "release", "close")
ConversationId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
AssistantName = Annotated[str, Path(max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


def _assistants(request: Request) -> AssistantService:
    service: AssistantService | None = getattr(app_state(request), "assistants", None)
    if service is None:
        raise NotFoundError("the assistant task is not installed")
    return service


def _inbox_context(service: AssistantService) -> dict[str, Any]:
    """The inbox: conversations waiting for a person first (oldest wait first), then
    those a person has."""
    store = service.store
    waiting = store.conversations(status="waiting_for_agent", limit=200)
    taken = store.conversations(status="agent", limit=200)
    return {
        "waiting": sorted(waiting, key=lambda c: c.updated_at),
        "taken": taken,
    }


@router.get("/assistants")
async def assistants_page(request: Request, session: SessionDep) -> Response:
    """Assistants, and the operator inbox (refreshing itself every 2 seconds)."""
    service = _assistants(request)

    def context() -> dict[str, Any]:
        return {"assistants": service.store.assistants(), **_inbox_context(service)}

    return render(
        request, "assistants.html", await anyio.to_thread.run_sync(context), session=session
    )


@router.get("/assistants/inbox")
async def inbox_fragment(request: Request, session: SessionDep) -> Response:
    """The inbox alone (polled by htmx)."""
    service = _assistants(request)
    context = await anyio.to_thread.run_sync(_inbox_context, service)
    return render(request, "_inbox.html", context, session=session)


def _test_chat(service: AssistantService, name: str, conversation_id: str | None) -> Any:
    if conversation_id is None:
        return None
    try:
        return service.store.conversation(conversation_id, assistant=name, messages=True)
    except NotFoundError:
        return None


@router.get("/assistants/{name}")
async def assistant_page(request: Request, name: AssistantName, session: SessionDep) -> Response:
    """One assistant: its config and a test chat."""
    service = _assistants(request)
    record = await anyio.to_thread.run_sync(service.store.get, name)
    context = {
        "assistant": record,
        "config_json": json.dumps(record.config.public(), indent=2, ensure_ascii=False),
        "chat": None,
    }
    return render(request, "assistant.html", context, session=session)


@router.post("/assistants/{name}/test")
async def assistant_test_message(
    request: Request, name: AssistantName, session: SessionDep
) -> Response:
    """A message of the test chat, answered as a visitor's would be (it is stored as a
    conversation like theirs, its origin ``dashboard``); the chat fragment comes back."""
    form = await checked_form(request, session)
    service = _assistants(request)
    record = await anyio.to_thread.run_sync(service.store.get, name)
    cid = field(form, "conversation_id") or None
    if cid is not None and not re.fullmatch(r"[0-9a-f]{32}", cid):
        cid = None
    error = None
    try:
        turn = await service.message(
            name, field(form, "text"), conversation_id=cid, origin="dashboard"
        )
        cid = turn.conversation.id
    except AiwebError as exc:
        error = exc.detail
    chat = await anyio.to_thread.run_sync(_test_chat, service, name, cid)
    context = {
        "assistant": record,
        "config_json": json.dumps(record.config.public(), indent=2, ensure_ascii=False),
        "chat": chat,
        "chat_error": error,
    }
    template = "_test_chat.html" if is_htmx(request) else "assistant.html"
    return render(request, template, context, session=session)


async def _conversation(
    request: Request, conversation_id: str, session: DashboardSession, template: str
) -> Response:
    service = _assistants(request)
    record = await anyio.to_thread.run_sync(
        lambda: service.store.conversation(conversation_id, messages=True)
    )
    context = {"conversation": record, "me": session.actor}
    return render(request, template, context, session=session)


@router.get("/conversations/{conversation_id}")
async def conversation_page(
    request: Request, conversation_id: ConversationId, session: SessionDep
) -> Response:
    """A conversation with its messages (refreshing themselves), and the operator's
    controls: take it, reply, hand it back to the bot, close it."""
    return await _conversation(request, conversation_id, session, "conversation.html")


@router.get("/conversations/{conversation_id}/messages")
async def conversation_messages(
    request: Request, conversation_id: ConversationId, session: SessionDep
) -> Response:
    """The conversation's messages and status alone (polled by htmx every 2 seconds)."""
    return await _conversation(request, conversation_id, session, "_conversation.html")


@router.post("/conversations/{conversation_id}/{action}")
async def operate_conversation(
    request: Request, conversation_id: ConversationId, action: str, session: SessionDep
) -> Response:
    """An operator's action (``take``, ``reply`` with ``text``, ``release``, ``close``),
    as ``POST /v1/conversations/{id}/…`` does it: the visitor's widget gets it at once."""
    form = await checked_form(request, session)
    back = f"/conversations/{conversation_id}"
    if action not in OPERATOR_ACTIONS:
        return redirect_with_flash(request, back, "error", f"Unknown action {action[:20]!r}.")
    service = _assistants(request)
    text = field(form, "text") if action == "reply" else None
    try:
        await service.operate(conversation_id, action, session.actor, text)
    except AiwebError as exc:
        return redirect_with_flash(request, back, "error", exc.detail)
    done = {
        "take": "You have the conversation; the bot stays quiet.",
        "reply": "Sent.",
        "release": "Handed back to the bot.",
        "close": "Closed.",
    }[action]
    return redirect_with_flash(request, back, "ok", done)


# -- API keys --------------------------------------------------------------------------------


@router.get("/keys")
async def keys_page(request: Request, session: SessionDep) -> Response:
    """API keys with their scopes and state; create and revoke."""
    keys: KeyService = app_state(request).keys
    context = {"keys": await anyio.to_thread.run_sync(keys.list), "scopes": SCOPES}
    return render(request, "keys.html", context, session=session)


@router.post("/keys")
async def create_key(request: Request, session: SessionDep) -> Response:
    """Create a key and show its secret once, on this response only."""
    form = await checked_form(request, session)
    keys: KeyService = app_state(request).keys
    name = field(form, "name")
    scopes = [s for s in form.getlist("scopes") if isinstance(s, str)]
    expires = field(form, "expires_in")
    secret = None
    error = None
    created = None
    try:
        expiry = parse_duration(expires) if expires else None
        created, secret = await anyio.to_thread.run_sync(
            lambda: keys.create(
                name,
                scopes or ["predict"],
                expires_in=expiry,
                targets=field(form, "assistants") or None,
                origins=field(form, "origins") or None,
                actor=session.actor,
                request_id=request_id(request),
            )
        )
    except AiwebError as exc:
        error = exc.detail
    context = {
        "keys": await anyio.to_thread.run_sync(keys.list),
        "scopes": SCOPES,
        "created": created,
        "secret": secret,
        "error": error,
        "form_name": name,
    }
    return render(
        request,
        "keys.html",
        context,
        session=session,
        status_code=200 if error is None else 422,
    )


@router.post("/keys/{name}/revoke")
async def revoke_key(request: Request, name: str, session: SessionDep) -> Response:
    """Revoke a key (servers stop accepting it within seconds)."""
    await checked_form(request, session)
    keys: KeyService = app_state(request).keys
    if session.kind == "key" and session.name == name:
        return redirect_with_flash(
            request, "/keys", "error", "You are logged in with this key; log in another way first."
        )
    try:
        await anyio.to_thread.run_sync(
            lambda: keys.revoke(name, actor=session.actor, request_id=request_id(request))
        )
    except AiwebError as exc:
        return redirect_with_flash(request, "/keys", "error", exc.detail)
    return redirect_with_flash(request, "/keys", "ok", f"API key {name} revoked.")


# -- audit -----------------------------------------------------------------------------------


@router.get("/audit")
async def audit_page(
    request: Request,
    session: SessionDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The audit log, newest first, 50 per page, filtered by action."""
    audit: AuditLog = app_state(request).audit
    events, total = await anyio.to_thread.run_sync(
        lambda: audit.list(limit=AUDIT_PAGE, offset=offset, action=action or None)
    )
    context = {
        "events": events,
        "total": total,
        "offset": offset,
        "action": action or "",
        "page": AUDIT_PAGE,
    }
    return render(request, "audit.html", context, session=session)
