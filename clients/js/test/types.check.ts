// Compiled by `npm run typecheck` (tsc --noEmit), never run: the .d.ts must describe
// how the client is used. Lines marked @ts-expect-error must stay type errors.
import AiwebClient, {
  AiwebError,
  NotFoundError,
  RateLimitedError,
  type Job,
  type PredictResponse,
  type Recommended,
} from "aiweb-client";

async function usage(): Promise<void> {
  const ai = new AiwebClient({ baseUrl: "http://127.0.0.1:8000", apiKey: "k", timeoutMs: 5000, retries: 2 });
  const predicted: PredictResponse = await ai.predict("sentiment", ["a fine film"]);
  const label: string = predicted.predictions[0].label;
  const score: number = predicted.predictions[0].scores[label];
  const explained = await ai.explain("sentiment", "a fine film", { target: "positive", topK: 5 });
  const weight: number = explained.explanations[0].contributions[0].weight;
  const recs: Recommended[] = await ai.recommend("u1", { model: "movies", n: 5, explain: true });
  const similar = await ai.similar("m1", { n: 3, include: "item" });
  const hits = await ai.search("faq", "refund", { topK: 3, filter: { topic: { in: ["billing"] } } });
  const dataset = await ai.uploadDataset("text,label\na,b\n", { filename: "d.csv" });
  const job: Job = await ai.submitJob({ type: "train", model: "reviews", dataset_id: dataset.id });
  const done = await ai.waitJob(job.id, { onProgress: (j) => console.log(j.progress), timeoutMs: 60_000 });
  const status: "succeeded" | "failed" | "cancelled" | "pending" | "running" = done.status;
  const csv: string = await ai.jobResult(job.id);
  try {
    await ai.job("nope");
  } catch (e) {
    if (e instanceof NotFoundError) {
      const s: number = e.status;
      const t: string = e.type;
      const d: string | undefined = e.problem?.detail;
      void [s, t, d];
    }
    if (e instanceof RateLimitedError) {
      const after: number | null = e.retryAfter;
      void after;
    }
    if (e instanceof AiwebError) void e.title;
  }
  // @ts-expect-error recommend needs a model
  await ai.recommend("u1", {});
  // @ts-expect-error inputs are texts
  await ai.predict("sentiment", [1, 2]);
  // @ts-expect-error a batch prediction needs a dataset_id
  await ai.submitJob({ type: "batch-predict", model: "m" });
  void [label, score, weight, recs, similar, hits, status, csv];
}
void usage;
