// aiweb-client: a dependency-free ESM client for the aiweb HTTP API (/v1).
// Runs on Node >= 20 and in browsers: it uses only fetch, AbortController, URL,
// FormData, Blob and setTimeout (no Node-only module is imported).
// Types: ./index.d.ts.

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRIES = 3;
const DEFAULT_MAX_RETRY_DELAY_MS = 30_000;
const RETRY_STATUSES = new Set([429, 503]);
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

// ---------------------------------------------------------------- errors

/**
 * Every error the client raises. HTTP errors carry the server's RFC 9457 problem
 * details (`application/problem+json`): status, type (`/problems/<slug>`), title,
 * detail and the whole body as `problem`.
 */
export class AiwebError extends Error {
  constructor(message, { status = 0, type = "", title = "", detail = "", problem = null, retryAfter = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.status = status;
    this.type = type;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
    this.requestId = problem && typeof problem.request_id === "string" ? problem.request_id : null;
    this.retryAfter = retryAfter;
  }
}

/** 400: malformed request framing. */
export class BadRequestError extends AiwebError {}
/** 401: missing, unknown, revoked or expired API key. */
export class UnauthorizedError extends AiwebError {}
/** 403: the key lacks the route's scope. */
export class ForbiddenError extends AiwebError {}
/** 404: unknown model, version, alias, job, dataset, item, collection ... */
export class NotFoundError extends AiwebError {}
/** 409: conflicts with the current state (e.g. a job result before it succeeded). */
export class ConflictError extends AiwebError {}
/** 413: too many inputs or a body over the size limit. */
export class PayloadTooLargeError extends AiwebError {}
/** 415: unsupported Content-Type. */
export class UnsupportedMediaTypeError extends AiwebError {}
/** 422: invalid input (validation problems list `problem.errors`). */
export class InvalidInputError extends AiwebError {}
/** 429: over the key's rate limit; `retryAfter` in seconds. */
export class RateLimitedError extends AiwebError {}
/** 503: queue full, model not ready, broker unavailable; `retryAfter` in seconds. */
export class ServiceUnavailableError extends AiwebError {}
/** Any other 5xx. */
export class ServerError extends AiwebError {}
/** No HTTP answer: connection refused, reset, DNS ... (`status` 0). */
export class AiwebConnectionError extends AiwebError {}
/** No answer within `timeoutMs` (a request) or a job not finished in time (`waitJob`). */
export class AiwebTimeoutError extends AiwebConnectionError {}

// The server's finer classes (aiweb.errors, the Python SDK's names), by problem slug.
export class ModelNotFound extends NotFoundError {}
export class EmbeddingModelNotInstalled extends ModelNotFound {}
export class ModelVersionNotFound extends NotFoundError {}
export class AliasNotFound extends NotFoundError {}
export class DatasetNotFound extends NotFoundError {}
export class JobNotFound extends NotFoundError {}
export class ScheduleNotFound extends NotFoundError {}
export class PredictionNotFound extends NotFoundError {}
export class KeyNotFound extends NotFoundError {}
export class UserNotFound extends NotFoundError {}
export class ItemNotFound extends NotFoundError {}
export class CollectionNotFound extends NotFoundError {}
export class DocumentNotFound extends NotFoundError {}
export class DataFormatError extends InvalidInputError {}
export class InvalidRowError extends DataFormatError {}
export class ModelNotReadyError extends ServiceUnavailableError {}
export class QueueFullError extends ServiceUnavailableError {}
export class BrokerUnavailableError extends ServiceUnavailableError {}

const SLUG_CLASSES = {
  "model-not-found": ModelNotFound,
  "embedding-model-not-installed": EmbeddingModelNotInstalled,
  "model-version-not-found": ModelVersionNotFound,
  "alias-not-found": AliasNotFound,
  "dataset-not-found": DatasetNotFound,
  "job-not-found": JobNotFound,
  "schedule-not-found": ScheduleNotFound,
  "prediction-not-found": PredictionNotFound,
  "key-not-found": KeyNotFound,
  "user-not-found": UserNotFound,
  "item-not-found": ItemNotFound,
  "collection-not-found": CollectionNotFound,
  "document-not-found": DocumentNotFound,
  "data-format": DataFormatError,
  "invalid-row": InvalidRowError,
  "model-not-ready": ModelNotReadyError,
  "queue-full": QueueFullError,
  "broker-unavailable": BrokerUnavailableError,
};

const ERROR_CLASSES = {
  400: BadRequestError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  413: PayloadTooLargeError,
  415: UnsupportedMediaTypeError,
  422: InvalidInputError,
  429: RateLimitedError,
  503: ServiceUnavailableError,
};

/** The problem's slug picks the class when its status agrees; else the status does. */
function errorClass(status, type) {
  const bySlug = Object.hasOwn(SLUG_CLASSES, type.split("/").pop()) ? SLUG_CLASSES[type.split("/").pop()] : undefined;
  const byStatus = ERROR_CLASSES[status] ?? (status >= 500 ? ServerError : AiwebError);
  return bySlug && bySlug.prototype instanceof byStatus ? bySlug : byStatus;
}

/** Seconds to wait from a Retry-After value (delta seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value === "") return null;
  const text = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, (at - now) / 1000);
}

async function errorFromResponse(response) {
  const status = response.status;
  const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
  let problem = null;
  let text = "";
  try {
    text = await response.text();
    const contentType = response.headers.get("content-type") ?? "";
    if (contentType.includes("json") && text) {
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) problem = parsed;
    }
  } catch {
    problem = null;
  }
  const title = typeof problem?.title === "string" ? problem.title : response.statusText || `HTTP ${status}`;
  const detail = typeof problem?.detail === "string" ? problem.detail : text.slice(0, 500);
  const type = typeof problem?.type === "string" ? problem.type : "about:blank";
  const Cls = errorClass(status, type);
  const message = `${status} ${title}${detail ? `: ${detail}` : ""}`;
  return new Cls(message, { status, type, title, detail, problem, retryAfter });
}

// ---------------------------------------------------------------- helpers

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

const enc = encodeURIComponent;

function withoutUndefined(object) {
  const out = {};
  for (const [key, value] of Object.entries(object)) if (value !== undefined) out[key] = value;
  return out;
}

function textList(inputs) {
  return typeof inputs === "string" ? [inputs] : inputs;
}

// ---------------------------------------------------------------- client

/**
 * A client of one aiweb server.
 *
 *     const ai = new AiwebClient({ baseUrl: "http://127.0.0.1:8000", apiKey });
 *     const { predictions } = await ai.predict("sentiment", ["a fine film"]);
 */
export class AiwebClient {
  constructor({
    baseUrl,
    apiKey,
    timeoutMs = DEFAULT_TIMEOUT_MS,
    retries = DEFAULT_RETRIES,
    maxRetryDelayMs = DEFAULT_MAX_RETRY_DELAY_MS,
    fetch: fetchImpl,
    headers,
    onRetry,
  } = {}) {
    if (!baseUrl) throw new TypeError("AiwebClient: baseUrl is required");
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    this.apiKey = apiKey ?? null;
    this.timeoutMs = timeoutMs;
    this.retries = Math.max(0, Math.floor(retries));
    this.maxRetryDelayMs = maxRetryDelayMs;
    this.headers = { ...(headers ?? {}) };
    this.onRetry = onRetry ?? null;
    const f = fetchImpl ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("AiwebClient: no fetch available; pass {fetch}");
    this._fetch = (...args) => f(...args); // unbound window.fetch throws "Illegal invocation"
  }

  // ---------------------------------------------------------- transport

  /**
   * One API call: JSON (or FormData) in, JSON (or text) out, problem details raised as
   * AiwebError subclasses, 429/503 retried with back-off honouring Retry-After.
   */
  async request(method, path, { query, json, body, signal, timeoutMs, retries, accept = "json" } = {}) {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
    }
    const headers = { Accept: accept === "json" ? "application/json" : "*/*", ...this.headers };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    let payload = body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(json);
    }
    const maxRetries = retries ?? this.retries;
    const perAttempt = timeoutMs ?? this.timeoutMs;
    for (let attempt = 0; ; attempt += 1) {
      const response = await this._send(url, { method, headers, body: payload }, perAttempt, signal);
      if (response.ok) {
        if (response.status === 204) return null;
        if (accept === "text") return response.text();
        const text = await response.text();
        return text ? JSON.parse(text) : null;
      }
      const error = await errorFromResponse(response);
      if (!RETRY_STATUSES.has(response.status) || attempt >= maxRetries) throw error;
      const delayMs = this._retryDelayMs(attempt, error.retryAfter);
      if (delayMs === null) throw error; // the server asks for a longer wait than allowed
      if (this.onRetry) this.onRetry({ attempt: attempt + 1, delayMs, error });
      await sleep(delayMs, signal);
    }
  }

  /** Back-off before retry `attempt + 1`: Retry-After when given (null when over the
   * bound), else 250 ms doubling with jitter, at most maxRetryDelayMs. */
  _retryDelayMs(attempt, retryAfterS) {
    if (retryAfterS !== null && retryAfterS !== undefined) {
      const ms = Math.ceil(retryAfterS * 1000);
      return ms > this.maxRetryDelayMs ? null : ms;
    }
    const base = Math.min(this.maxRetryDelayMs, 250 * 2 ** attempt);
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  async _send(url, init, timeoutMs, signal) {
    const controller = new AbortController();
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeoutMs)
        : null;
    const onAbort = () => controller.abort(signal.reason);
    if (signal) {
      if (signal.aborted) controller.abort(signal.reason);
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    try {
      return await this._fetch(url, { ...init, signal: controller.signal });
    } catch (cause) {
      if (timedOut) {
        throw new AiwebTimeoutError(`${init.method} ${url.pathname}: no answer within ${timeoutMs} ms`, { cause });
      }
      if (signal?.aborted) throw signal.reason ?? cause;
      throw new AiwebConnectionError(`${init.method} ${url.pathname}: ${cause?.message ?? cause}`, { cause });
    } finally {
      if (timer !== null) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  // ---------------------------------------------------------- models

  /** POST /v1/models/{model}/predict: `model` is `name`, `name@alias` or `name:version`. */
  predict(model, inputs, options = {}) {
    return this.request("POST", `/v1/models/${enc(model)}/predict`, { ...options, json: { inputs: textList(inputs) } });
  }

  /** POST /v1/models/{model}/explain: per-word contributions to `target` (default: the answer). */
  explain(model, inputs, { target, topK, ...options } = {}) {
    const json = withoutUndefined({ inputs: textList(inputs), target, top_k: topK });
    return this.request("POST", `/v1/models/${enc(model)}/explain`, { ...options, json });
  }

  /** POST /v1/models/{model}/embed: sentence embeddings of a feature-extraction model. */
  embed(model, inputs, options = {}) {
    return this.request("POST", `/v1/models/${enc(model)}/embed`, { ...options, json: { inputs: textList(inputs) } });
  }

  /** GET /v1/models */
  listModels(options = {}) {
    return this.request("GET", "/v1/models", options);
  }

  /** GET /v1/models/{name} */
  getModel(name, options = {}) {
    return this.request("GET", `/v1/models/${enc(name)}`, options);
  }

  /** POST /v1/predictions/{id}/feedback: the true label of an answered prediction, the
   * true value of a predicted number ({value: 129500}), or the corrected entity list of a
   * prediction of entities ({entities: [{start, end, label}]}). */
  feedback(predictionId, body, options = {}) {
    return this.request("POST", `/v1/predictions/${enc(predictionId)}/feedback`, { ...options, json: body });
  }

  // ---------------------------------------------------------- recommendations

  /** GET /v1/users/{userId}/recommendations?model=&n=&explain= */
  recommend(userId, { model, n, explain, include, exclude, excludeSeen, category, ...options } = {}) {
    if (!model) throw new TypeError("recommend: {model} is required");
    const query = { model, n, explain, include, exclude, exclude_seen: excludeSeen, category };
    return this.request("GET", `/v1/users/${enc(userId)}/recommendations`, { ...options, query });
  }

  /** GET /v1/items/{itemId}/similar (model optional when one recommender is in production). */
  similar(itemId, { model, n, explain, include, category, ...options } = {}) {
    const query = { model, n, explain, include, category };
    return this.request("GET", `/v1/items/${enc(itemId)}/similar`, { ...options, query });
  }

  /** POST /v1/items: upsert catalogue items. */
  upsertItems(items, options = {}) {
    return this.request("POST", "/v1/items", { ...options, json: { items } });
  }

  /** POST /v1/interactions: record user-item interactions. */
  addInteractions(interactions, options = {}) {
    return this.request("POST", "/v1/interactions", { ...options, json: { interactions } });
  }

  // ---------------------------------------------------------- search

  /** POST /v1/collections/{collection}/search */
  search(collection, query, { topK, filter, mode, ...options } = {}) {
    const json = withoutUndefined({ query, top_k: topK, filter, mode });
    return this.request("POST", `/v1/collections/${enc(collection)}/search`, { ...options, json });
  }

  /** PUT /v1/collections/{name}: create (or update) a collection. */
  putCollection(name, body = {}, options = {}) {
    return this.request("PUT", `/v1/collections/${enc(name)}`, { ...options, json: body });
  }

  /** POST /v1/collections/{name}/documents: `[{id, text, metadata}]`. */
  upsertDocuments(name, documents, options = {}) {
    return this.request("POST", `/v1/collections/${enc(name)}/documents`, { ...options, json: { documents } });
  }

  // ---------------------------------------------------------- datasets and jobs

  /**
   * POST /v1/datasets (multipart): `data` is a string, Blob/File, ArrayBuffer or typed
   * array holding a CSV (header row first), JSONL (records, or span annotations:
   * `{"text", "spans": [{"start", "end", "label"}]}` a line) or CoNLL file.
   */
  uploadDataset(data, { filename = "data.csv", contentType, ...options } = {}) {
    const type = contentType ?? (/\.(jsonl|ndjson)$/i.test(filename) ? "application/jsonl" : "text/csv");
    const blob = data instanceof Blob ? data : new Blob([data], { type });
    const form = new FormData();
    form.append("file", blob, filename);
    return this.request("POST", "/v1/datasets", { ...options, body: form });
  }

  /** POST /v1/jobs: `{type: "train" | "batch-predict", ...}`; answers the job record (202). */
  submitJob(body, options = {}) {
    return this.request("POST", "/v1/jobs", { ...options, json: body });
  }

  /** GET /v1/jobs/{id} */
  job(id, options = {}) {
    return this.request("GET", `/v1/jobs/${enc(id)}`, options);
  }

  /** GET /v1/jobs?status=&type=&limit=&offset= (newest first). */
  listJobs({ status, type, limit, offset, ...options } = {}) {
    return this.request("GET", "/v1/jobs", { ...options, query: { status, type, limit, offset } });
  }

  /** POST /v1/jobs/{id}/cancel */
  cancelJob(id, options = {}) {
    return this.request("POST", `/v1/jobs/${enc(id)}/cancel`, options);
  }

  /** GET /v1/jobs/{id}/result: a finished batch prediction's CSV, as text. */
  jobResult(id, options = {}) {
    return this.request("GET", `/v1/jobs/${enc(id)}/result`, { ...options, accept: "text" });
  }

  /**
   * Poll GET /v1/jobs/{id} until the job is succeeded, failed or cancelled; returns that
   * record (it does not throw for a failed job: look at `status` and `error`).
   * `onProgress(job)` is called with each record whose status, progress or message
   * changed. Throws AiwebTimeoutError after `timeoutMs` (default 10 minutes).
   */
  async waitJob(id, { onProgress, timeoutMs = 600_000, intervalMs = 250, signal } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      const job = await this.job(id, { signal });
      const seen = `${job.status}|${job.progress}|${job.message}`;
      if (onProgress && seen !== last) await onProgress(job);
      last = seen;
      if (FINISHED.has(job.status)) return job;
      if (Date.now() + intervalMs > deadline) {
        throw new AiwebTimeoutError(`job ${id} still ${job.status} after ${timeoutMs} ms`, { detail: job.message ?? "" });
      }
      await sleep(intervalMs, signal);
    }
  }

  // ---------------------------------------------------------- assistant
  // TODO(issue 27): assistant messages (sendMessage) once the server has a route for
  // them; there is none in /v1 yet, so there is deliberately no method.
}

export default AiwebClient;
