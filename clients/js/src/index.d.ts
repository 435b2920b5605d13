// Types of aiweb-client (hand-written; the shapes follow the server's /openapi.json).

// ------------------------------------------------------------------ errors

/** RFC 9457 problem details, as the server sends them (application/problem+json). */
export interface Problem {
  /** `/problems/<slug>`, e.g. `/problems/model-not-found`. */
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The request path. */
  instance?: string;
  request_id?: string | null;
  /** Validation problems (422): where and what. */
  errors?: { loc: (string | number)[]; msg: string; type: string }[];
  [member: string]: unknown;
}

export interface AiwebErrorInit {
  status?: number;
  type?: string;
  title?: string;
  detail?: string;
  problem?: Problem | null;
  retryAfter?: number | null;
  cause?: unknown;
}

/** Every error the client raises. */
export class AiwebError extends Error {
  constructor(message: string, init?: AiwebErrorInit);
  /** HTTP status; 0 when no answer came (AiwebConnectionError, AiwebTimeoutError). */
  readonly status: number;
  /** The problem's `type` (`/problems/<slug>`); `about:blank` for a non-problem body. */
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  /** The whole problem body (null when the answer was not JSON). */
  readonly problem: Problem | null;
  /** The server's request id (X-Request-ID), when it sent one. */
  readonly requestId: string | null;
  /** Seconds from the Retry-After header (429, 503), else null. */
  readonly retryAfter: number | null;
}
/** 400 */
export class BadRequestError extends AiwebError {}
/** 401: missing, unknown, revoked or expired API key. */
export class UnauthorizedError extends AiwebError {}
/** 403: the key lacks the route's scope. */
export class ForbiddenError extends AiwebError {}
/** 404: unknown model, alias, version, job, dataset, item, collection ... */
export class NotFoundError extends AiwebError {}
/** 409: conflicts with the current state. */
export class ConflictError extends AiwebError {}
/** 413: too many inputs, or a body over the size limit. */
export class PayloadTooLargeError extends AiwebError {}
/** 415 */
export class UnsupportedMediaTypeError extends AiwebError {}
/** 422: invalid input; `problem.errors` lists validation errors. */
export class InvalidInputError extends AiwebError {}
/** 429: over the rate limit (after the retries). */
export class RateLimitedError extends AiwebError {}
/** 503: queue full, model not ready, broker unavailable (after the retries). */
export class ServiceUnavailableError extends AiwebError {}
/** Any other 5xx. */
export class ServerError extends AiwebError {}
/** No HTTP answer (connection refused, reset, DNS); status 0. */
export class AiwebConnectionError extends AiwebError {}
/** No answer within timeoutMs, or a job not finished within waitJob's timeoutMs. */
export class AiwebTimeoutError extends AiwebConnectionError {}

// The server's finer classes (by problem slug, as aiweb.errors and the Python SDK name them).
/** `/problems/model-not-found` */
export class ModelNotFound extends NotFoundError {}
/** `/problems/embedding-model-not-installed` */
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
/** 422 `/problems/data-format`: a malformed uploaded file. */
export class DataFormatError extends InvalidInputError {}
/** 422 `/problems/invalid-row`: a tabular row its model refuses (the detail names the row and column). */
export class InvalidRowError extends DataFormatError {}
export class ModelNotReadyError extends ServiceUnavailableError {}
export class QueueFullError extends ServiceUnavailableError {}
export class BrokerUnavailableError extends ServiceUnavailableError {}

/** Seconds to wait from a Retry-After value (delta seconds or an HTTP date), or null. */
export function parseRetryAfter(value: string | null | undefined, now?: number): number | null;

// ------------------------------------------------------------------ responses

/** One span of a text in feedback: text.slice(start, end) is one label (code point offsets). */
export interface FeedbackSpan {
  start: number;
  end: number;
  label: string;
}

export interface Prediction {
  /** Prediction id: send feedback about it later. */
  id: string;
  label: string;
  /** Probability of every class. */
  scores: Record<string, number>;
}
export interface PredictResponse {
  model: string;
  version: number;
  predictions: Prediction[];
}

export interface Contribution {
  feature: string;
  start?: number | null;
  end?: number | null;
  weight: number;
}
export interface TextExplanation {
  label: string;
  scores: Record<string, number>;
  target: string;
  method: string;
  exact: boolean;
  base_value: number;
  contributions: Contribution[];
  omitted?: { count: number; weight: number };
  logit: number;
  skipped_words?: number;
  out_of_scope?: Record<string, unknown> | null;
}
export interface ExplainResponse {
  model: string;
  version: number;
  explanations: TextExplanation[];
}

export interface EmbedResponse {
  model: string;
  version: number;
  dim: number;
  embeddings: number[][];
  truncated: boolean[];
}

export interface ItemSummary {
  item_id: string;
  title: string;
  categories: string[];
  metadata: Record<string, unknown>;
  available: boolean;
}
export interface Recommended {
  item_id: string;
  score: number;
  /** `collaborative`, `similar-to:<item_id>` or `popular`. */
  reason: string;
  item?: ItemSummary | null;
  because?: { item_id: string; weight: number }[] | null;
  explanation?: {
    method: string;
    exact: boolean;
    base: number;
    rest: number;
    parts: { source: string; weight: number; score: number }[];
  } | null;
}
export interface SimilarItem {
  item_id: string;
  score: number;
  reason: string;
  item?: ItemSummary | null;
  because?: {
    source: string;
    parts: { source: string; similarity: number; weight: number }[];
    shared_categories: string[];
  } | null;
}

export interface ItemIn {
  item_id: string;
  title?: string;
  text?: string;
  categories?: string[];
  tags?: string[];
  metadata?: Record<string, unknown>;
  available?: boolean;
}
export interface InteractionIn {
  user_id: string;
  item_id: string;
  /** view, click, like, rating, purchase, or a custom lower-case name. */
  type: string;
  value?: number | null;
  /** ISO 8601 or Unix seconds. */
  timestamp?: string | number | null;
}

export interface SearchHit {
  id: string;
  score: number;
  text: string;
  metadata: Record<string, unknown>;
}
export interface SearchResponse {
  hits: SearchHit[];
  query_truncated: boolean;
}
export type SearchFilter = Record<string, string | number | boolean | { in: (string | number | boolean)[] }>;

export interface Dataset {
  id: string;
  name: string;
  rows: number;
  sha256: string;
  columns: string[];
  /** "csv", "jsonl", "conll" or "spans" (a JSONL file of `{"text", "spans"}` lines). */
  format: string;
  size_bytes: number;
  created_by: string;
  created_at: string;
}

export type JobStatus = "pending" | "running" | "succeeded" | "failed" | "cancelled";
export interface Job {
  id: string;
  type: string;
  params: Record<string, unknown>;
  status: JobStatus;
  /** Fraction done, 0 to 1. */
  progress: number;
  message: string;
  result: Record<string, unknown> | null;
  error: string | null;
  attempts: number;
  max_attempts: number;
  cancel_requested: boolean;
  submitted_by: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  links: Record<string, string>;
}
export interface JobList {
  jobs: Job[];
  total: number;
  limit: number;
  offset: number;
  next_offset: number | null;
}

/** A job to submit: `{type: "train", model, dataset_id | dataset, ...}`,
 * `{type: "train", task: "recommendation", model, algorithm?, ...}` or
 * `{type: "batch-predict", model, dataset_id, text_column?, id_column?}`. */
export type JobSpec =
  | ({ type: "train"; model: string; task?: "text-classification" } & ({ dataset_id: string } | { dataset: string }) & Record<string, unknown>)
  | ({ type: "train"; task: "recommendation"; model: string } & Record<string, unknown>)
  | { type: "batch-predict"; model: string; dataset_id: string; text_column?: string; id_column?: string };

// ------------------------------------------------------------------ client

export interface RetryInfo {
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  error: AiwebError;
}

export interface ClientOptions {
  /** e.g. `http://127.0.0.1:8000` (no trailing `/v1`). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>`. */
  apiKey?: string | null;
  /** Per attempt; 0 = none. Default 30000. */
  timeoutMs?: number;
  /** Retries of a 429 or 503 answer. Default 3. */
  retries?: number;
  /** Longest wait before a retry; a longer Retry-After is not waited for (the error is
   * raised at once). Default 30000. */
  maxRetryDelayMs?: number;
  /** A fetch implementation (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Called before each retry. */
  onRetry?: (info: RetryInfo) => void;
}

/** Per call: cancel with `signal`, override the client's timeoutMs and retries. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  retries?: number;
}

export interface RequestOptions extends CallOptions {
  query?: Record<string, string | number | boolean | (string | number | boolean)[] | null | undefined>;
  json?: unknown;
  body?: BodyInit;
  accept?: "json" | "text";
}

export interface WaitJobOptions {
  /** Called with each record whose status, progress or message changed. */
  onProgress?: (job: Job) => void | Promise<void>;
  /** Default 600000 (10 minutes). */
  timeoutMs?: number;
  /** Poll interval; default 250. */
  intervalMs?: number;
  signal?: AbortSignal;
}

export class AiwebClient {
  constructor(options: ClientOptions);
  readonly baseUrl: string;

  /** One API call; problem details raised as AiwebError subclasses, 429/503 retried. */
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T>;

  /** `model`: `name`, `name@alias` or `name:version`. */
  predict(model: string, inputs: string | string[], options?: CallOptions): Promise<PredictResponse>;
  explain(
    model: string,
    inputs: string | string[],
    options?: CallOptions & { target?: string; topK?: number },
  ): Promise<ExplainResponse>;
  embed(model: string, inputs: string | string[], options?: CallOptions): Promise<EmbedResponse>;
  listModels(options?: CallOptions): Promise<{ models: Record<string, unknown>[] }>;
  getModel(name: string, options?: CallOptions): Promise<Record<string, unknown>>;
  feedback(
    predictionId: string,
    body:
      | { label: string; comment?: string }
      | { value: number; comment?: string }
      | { entities: FeedbackSpan[]; comment?: string },
    options?: CallOptions,
  ): Promise<Record<string, unknown>>;

  recommend(
    userId: string,
    options: CallOptions & {
      model: string;
      n?: number;
      explain?: boolean;
      include?: "item";
      exclude?: string[];
      excludeSeen?: boolean;
      category?: string;
    },
  ): Promise<Recommended[]>;
  similar(
    itemId: string,
    options?: CallOptions & { model?: string; n?: number; explain?: boolean; include?: "item"; category?: string },
  ): Promise<SimilarItem[]>;
  upsertItems(items: ItemIn[], options?: CallOptions): Promise<{ upserted: number }>;
  addInteractions(
    interactions: InteractionIn[],
    options?: CallOptions,
  ): Promise<{ stored: number; duplicates: number }>;

  search(
    collection: string,
    query: string,
    options?: CallOptions & { topK?: number; filter?: SearchFilter; mode?: "vector" | "keyword" | "hybrid" },
  ): Promise<SearchResponse>;
  putCollection(
    name: string,
    body?: { embedding_model?: string; metadata_fields?: string[] | null },
    options?: CallOptions,
  ): Promise<Record<string, unknown>>;
  upsertDocuments(
    name: string,
    documents: { id: string; text: string; metadata?: Record<string, unknown> }[],
    options?: CallOptions,
  ): Promise<Record<string, unknown>>;

  /** A CSV (header row first), JSONL (records or `{"text", "spans"}` lines) or CoNLL (`.conll`) file; the name's suffix says which. */
  uploadDataset(
    data: string | Blob | ArrayBuffer | ArrayBufferView,
    options?: CallOptions & { filename?: string; contentType?: string },
  ): Promise<Dataset>;
  submitJob(body: JobSpec, options?: CallOptions): Promise<Job>;
  job(id: string, options?: CallOptions): Promise<Job>;
  listJobs(
    options?: CallOptions & { status?: JobStatus; type?: string; limit?: number; offset?: number },
  ): Promise<JobList>;
  cancelJob(id: string, options?: CallOptions): Promise<Job>;
  /** A finished batch prediction's CSV. */
  jobResult(id: string, options?: CallOptions): Promise<string>;
  /** Polls until succeeded, failed or cancelled and returns that record (no throw for a
   * failed job); AiwebTimeoutError after `timeoutMs`. */
  waitJob(id: string, options?: WaitJobOptions): Promise<Job>;
}

export default AiwebClient;
