// Tests of aiweb-client against a live `aiweb serve` (started by
// tests/integration/test_js_client.py). Environment:
//   AIWEB_URL          the server, e.g. http://127.0.0.1:8000
//   AIWEB_KEY          an admin key
//   AIWEB_LIMITED_KEY  a second key (scope predict) whose budget the 429 test spends
//   AIWEB_MODEL        a registered text classifier with labels negative/positive
// Without AIWEB_URL the live tests are skipped; the offline ones still run.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import AiwebClientDefault, {
  AiwebClient,
  AiwebConnectionError,
  AiwebError,
  AiwebTimeoutError,
  AliasNotFound,
  CollectionNotFound,
  ConflictError,
  InvalidInputError,
  JobNotFound,
  ModelNotFound,
  NotFoundError,
  RateLimitedError,
  UnauthorizedError,
  parseRetryAfter,
} from "../src/index.js";

const URL_ = process.env.AIWEB_URL;
const KEY = process.env.AIWEB_KEY;
const LIMITED_KEY = process.env.AIWEB_LIMITED_KEY;
const MODEL = process.env.AIWEB_MODEL ?? "sentiment";
const live = { skip: URL_ ? false : "AIWEB_URL is not set (no live server)" };

const POSITIVE = "a wonderful, moving film, brilliant and funny";
const NEGATIVE = "terrible and boring, a dull lifeless mess";

const client = () => new AiwebClient({ baseUrl: URL_, apiKey: KEY, timeoutMs: 20_000 });

/** The same call by hand (fetch), retried on 429 so that the budget does not matter. */
async function raw(method, path, body, key = KEY) {
  for (let i = 0; ; i += 1) {
    const response = await fetch(URL_ + path, {
      method,
      headers: { "X-API-Key": key, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (response.status === 429 && i < 10) {
      await new Promise((r) => setTimeout(r, 1000 * Number(response.headers.get("retry-after") ?? 1)));
      continue;
    }
    return { status: response.status, headers: response.headers, body: await response.json() };
  }
}

const withoutIds = (predictions) => predictions.map(({ label, scores }) => ({ label, scores }));

describe("offline", () => {
  test("Retry-After: delta seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("3"), 3);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter("soon"), null);
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5);
  });

  test("the default export is the client; baseUrl is required", () => {
    assert.equal(AiwebClientDefault, AiwebClient);
    assert.throws(() => new AiwebClient({}), TypeError);
  });

  const root = fileURLToPath(new URL("..", import.meta.url));
  const tsc = `${root}node_modules/typescript/bin/tsc`;
  test("the .d.ts compiles and describes the usage in test/types.check.ts", { skip: existsSync(tsc) ? false : "typescript not installed (npm install)" }, () => {
    const run = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: root, encoding: "utf8" });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });

  test("no server: AiwebConnectionError, status 0", async () => {
    const c = new AiwebClient({ baseUrl: "http://127.0.0.1:9", retries: 0, timeoutMs: 5000 });
    const error = await c.predict("m", ["x"]).catch((e) => e);
    assert.ok(error instanceof AiwebConnectionError, String(error));
    assert.ok(error instanceof AiwebError);
    assert.equal(error.status, 0);
  });
});

describe("live server", live, () => {
  test("predict answers what POST /v1/models/{name}/predict answers", async () => {
    const inputs = [POSITIVE, NEGATIVE];
    const got = await client().predict(MODEL, inputs);
    const expected = await raw("POST", `/v1/models/${MODEL}/predict`, { inputs });
    assert.equal(expected.status, 200);
    assert.equal(got.model, expected.body.model);
    assert.equal(got.version, expected.body.version);
    assert.deepEqual(withoutIds(got.predictions), withoutIds(expected.body.predictions));
    assert.deepEqual(
      got.predictions.map((p) => p.label),
      ["positive", "negative"],
    );
    assert.ok(got.predictions.every((p) => typeof p.id === "string" && p.id.length > 0));
    // a single string is sent as one input
    const one = await client().predict(`${MODEL}:1`, POSITIVE);
    assert.equal(one.predictions.length, 1);
    assert.deepEqual(one.predictions[0].scores, got.predictions[0].scores);
  });

  test("explain: topK and target, as the route answers", async () => {
    const text = "not a good movie, but the acting was brilliant";
    const got = await client().explain(MODEL, [text], { topK: 3 });
    const expected = await raw("POST", `/v1/models/${MODEL}/explain`, { inputs: [text], top_k: 3 });
    assert.deepEqual(got, expected.body);
    const [e] = got.explanations;
    assert.ok(e.contributions.length <= 3 && e.contributions.length > 0);
    assert.equal(e.target, e.label);
    for (const c of e.contributions) assert.equal(text.slice(c.start, c.end), c.feature);
    const negative = await client().explain(MODEL, text, { target: "negative", topK: 0 });
    assert.equal(negative.explanations[0].target, "negative");
  });

  test("404: NotFoundError with the problem details", async () => {
    const error = await client().predict("no-such-model", ["x"]).catch((e) => e);
    assert.ok(error instanceof ModelNotFound, String(error));
    assert.ok(error instanceof NotFoundError);
    assert.ok(error instanceof AiwebError);
    assert.equal(error.name, "ModelNotFound");
    assert.equal(error.status, 404);
    assert.equal(error.type, "/problems/model-not-found");
    assert.equal(error.problem.status, 404);
    assert.equal(error.title, error.problem.title);
    assert.equal(error.detail, error.problem.detail);
    assert.match(error.message, /^404 /);
    const job = await client().job("no-such-job").catch((e) => e);
    assert.ok(job instanceof JobNotFound, String(job));
    const alias = await client().predict(`${MODEL}@nowhere`, ["x"]).catch((e) => e);
    assert.ok(alias instanceof AliasNotFound, String(alias));
  });

  test("401: UnauthorizedError for a wrong key and for none", async () => {
    for (const apiKey of ["aiweb_wrong-key", undefined]) {
      const c = new AiwebClient({ baseUrl: URL_, apiKey });
      const error = await c.predict(MODEL, ["x"]).catch((e) => e);
      assert.ok(error instanceof UnauthorizedError, String(error));
      assert.equal(error.status, 401);
      assert.equal(error.problem.type, error.type);
    }
  });

  test("422: InvalidInputError listing the validation errors", async () => {
    const error = await client().predict(MODEL, []).catch((e) => e);
    assert.ok(error instanceof InvalidInputError, String(error));
    assert.equal(error.status, 422);
    assert.ok(Array.isArray(error.problem.errors) && error.problem.errors.length > 0);
    const topK = await client().explain(MODEL, ["x"], { topK: -1 }).catch((e) => e);
    assert.ok(topK instanceof InvalidInputError, String(topK));
    const file = await client().uploadDataset("text,label\n", { filename: "empty.csv" }).catch((e) => e);
    assert.ok(file instanceof InvalidInputError, String(file));
    assert.equal(file.status, 422);
  });

  test("429: retried after Retry-After, or raised with retryAfter", { skip: LIMITED_KEY ? false : "no AIWEB_LIMITED_KEY" }, async () => {
    // spend the limited key's budget until the server refuses
    let refused = null;
    for (let i = 0; i < 200 && !refused; i += 1) {
      const response = await fetch(`${URL_}/v1/models/${MODEL}/predict`, {
        method: "POST",
        headers: { "X-API-Key": LIMITED_KEY, "Content-Type": "application/json" },
        body: JSON.stringify({ inputs: [POSITIVE] }),
      });
      await response.arrayBuffer();
      if (response.status === 429) refused = response;
    }
    assert.ok(refused, "the server never answered 429");
    const noRetry = new AiwebClient({ baseUrl: URL_, apiKey: LIMITED_KEY, retries: 0 });
    const error = await noRetry.predict(MODEL, [POSITIVE]).catch((e) => e);
    assert.ok(error instanceof RateLimitedError, String(error));
    assert.equal(error.status, 429);
    assert.ok(error.retryAfter >= 1, `retryAfter ${error.retryAfter}`);

    const retries = [];
    const patient = new AiwebClient({
      baseUrl: URL_,
      apiKey: LIMITED_KEY,
      retries: 5,
      onRetry: (info) => retries.push(info),
    });
    const started = Date.now();
    const answer = await patient.predict(MODEL, [POSITIVE]);
    assert.equal(answer.predictions[0].label, "positive");
    assert.ok(retries.length >= 1, "no retry happened");
    assert.ok(retries[0].error instanceof RateLimitedError);
    assert.equal(retries[0].delayMs, retries[0].error.retryAfter * 1000); // Retry-After honoured
    assert.ok(Date.now() - started >= retries[0].delayMs);

    // a Retry-After over the bound is not waited for
    for (let i = 0; ; i += 1) {
      assert.ok(i < 200, "the server never answered 429 again");
      const r = await fetch(`${URL_}/v1/models/${MODEL}/predict`, {
        method: "POST",
        headers: { "X-API-Key": LIMITED_KEY, "Content-Type": "application/json" },
        body: JSON.stringify({ inputs: [POSITIVE] }),
      });
      await r.arrayBuffer();
      if (r.status === 429) break;
    }
    const bounded = new AiwebClient({ baseUrl: URL_, apiKey: LIMITED_KEY, retries: 5, maxRetryDelayMs: 100 });
    const t0 = Date.now();
    const boundedError = await bounded.predict(MODEL, [POSITIVE]).catch((e) => e);
    assert.ok(boundedError instanceof RateLimitedError, String(boundedError));
    assert.ok(Date.now() - t0 < 1000);
  });

  test("jobs: upload, train, wait with progress, predict with the new model", async () => {
    const c = client();
    const rows = ["text,label"];
    for (let i = 0; i < 10; i += 1) {
      rows.push(`"${POSITIVE} ${i}",positive`, `"a great, clever story ${i}",positive`);
      rows.push(`"${NEGATIVE} ${i}",negative`, `"i hated every minute ${i}",negative`);
    }
    const dataset = await c.uploadDataset(rows.join("\n") + "\n", { filename: "reviews.csv" });
    assert.equal(dataset.rows, 40);
    assert.deepEqual(dataset.columns, ["text", "label"]);

    const model = `js-reviews-${Date.now()}`;
    const submitted = await c.submitJob({ type: "train", model, dataset_id: dataset.id });
    assert.equal(submitted.type, "train");
    assert.ok(["pending", "running"].includes(submitted.status));

    const seen = [];
    const done = await c.waitJob(submitted.id, { onProgress: (job) => seen.push(job), intervalMs: 50 });
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.equal(done.progress, 1);
    assert.ok(seen.length >= 2, `progress seen ${seen.length} times`);
    assert.equal(seen.at(-1).status, "succeeded");
    for (let i = 1; i < seen.length; i += 1) assert.ok(seen[i].progress >= seen[i - 1].progress);
    const answer = await c.predict(model, [POSITIVE]);
    assert.equal(answer.model, model);

    // batch prediction: its CSV result
    const scoring = await c.uploadDataset(`id,text\nr1,"${POSITIVE}"\nr2,"${NEGATIVE}"\n`, { filename: "score.csv" });
    const batch = await c.submitJob({ type: "batch-predict", model, dataset_id: scoring.id });
    const tooEarly = await c.jobResult(batch.id).catch((e) => e);
    if (tooEarly instanceof Error) assert.ok(tooEarly instanceof ConflictError, String(tooEarly));
    const finished = await c.waitJob(batch.id, { intervalMs: 50 });
    assert.equal(finished.status, "succeeded", JSON.stringify(finished));
    const csv = await c.jobResult(batch.id);
    const lines = csv.trim().split(/\r?\n/);
    assert.equal(lines.length, 3, csv);
    assert.match(lines[1], /^r1,/);

    const timeout = await c.waitJob(batch.id, { timeoutMs: 0 }).catch((e) => e);
    assert.equal(timeout.status, "succeeded"); // a finished job returns at once
  });

  test("waitJob gives up after timeoutMs with AiwebTimeoutError", async () => {
    const c = client();
    const dataset = await c.uploadDataset("text,label\na,x\nb,y\nc,x\nd,y\n", { filename: "t.csv" });
    // a job that stays pending or running long enough: wait 0 ms for it
    const job = await c.submitJob({ type: "train", model: `js-wait-${Date.now()}`, dataset_id: dataset.id });
    const error = await c.waitJob(job.id, { timeoutMs: 0 }).catch((e) => e);
    if (error instanceof AiwebError) {
      assert.ok(error instanceof AiwebTimeoutError, String(error));
    } else {
      assert.ok(["succeeded", "failed"].includes(error.status)); // it finished first
    }
    await c.waitJob(job.id);
  });

  test("recommendations: items, interactions, a trained recommender, recommend and similar", async () => {
    const c = client();
    const items = [];
    for (let i = 0; i < 12; i += 1) {
      items.push({ item_id: `m${i}`, title: `Movie ${i}`, categories: [i % 2 ? "drama" : "comedy"] });
    }
    assert.equal((await c.upsertItems(items)).upserted, 12);
    const interactions = [];
    for (let u = 0; u < 20; u += 1) {
      for (let k = 0; k < 5; k += 1) {
        interactions.push({ user_id: `u${u}`, item_id: `m${(u + k * (1 + (u % 3))) % 12}`, type: "view" });
      }
    }
    const stored = await c.addInteractions(interactions);
    assert.ok(stored.stored > 0);
    const name = `js-movies-${Date.now()}`;
    const model = `${name}@staging`; // a version that loses to the baseline is not made production
    const job = await c.submitJob({ type: "train", task: "recommendation", model: name, algorithm: "ease", alias: "staging" });
    const done = await c.waitJob(job.id, { intervalMs: 100 });
    assert.equal(done.status, "succeeded", JSON.stringify(done));

    const recs = await c.recommend("u1", { model, n: 3, explain: true });
    assert.ok(recs.length > 0 && recs.length <= 3);
    const expected = await raw("GET", `/v1/users/u1/recommendations?model=${model}&n=3&explain=true`);
    assert.deepEqual(recs, expected.body);
    assert.ok("explanation" in recs[0]);
    const unknown = await c.recommend("someone-new", { model, n: 2 });
    assert.ok(unknown.every((r) => r.reason === "popular"));

    const like = await c.similar("m1", { model, n: 4, include: "item" });
    assert.ok(like.length > 0 && like.length <= 4);
    assert.ok(like.every((s) => s.item_id !== "m1" && s.item && typeof s.item.title === "string"));
    const missing = await c.recommend("u1", { model: "no-such-model" }).catch((e) => e);
    assert.ok(missing instanceof NotFoundError, String(missing));
  });

  test("search: an unknown collection is a NotFoundError; a collection is searched when the embedder is installed", async (t) => {
    const c = client();
    const error = await c.search("no-such-collection", "anything", { topK: 3 }).catch((e) => e);
    assert.ok(error instanceof CollectionNotFound, String(error));
    assert.equal(error.status, 404);
    const created = await c.putCollection("js-faq", {}).catch((e) => e);
    if (created instanceof AiwebError && created.status === 404) {
      t.skip(`no embedding model installed (${created.type})`);
      return;
    }
    assert.ok(!(created instanceof Error), String(created));
    await c.upsertDocuments("js-faq", [
      { id: "refund", text: "How do I get a refund for my order?", metadata: { topic: "billing" } },
      { id: "weather", text: "It is sunny in London today", metadata: { topic: "other" } },
    ]);
    const found = await c.search("js-faq", "refund", { topK: 1, mode: "keyword", filter: { topic: "billing" } });
    assert.deepEqual(
      found.hits.map((h) => h.id),
      ["refund"],
    );
  });
});
