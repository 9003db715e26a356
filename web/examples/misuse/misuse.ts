// Uses of the client that must NOT compile: each marked line fails with the marked code.
import { type ServerFrame, type UserMessageFrame, JobcastClient, JobcastError, KINDS } from "../../jobcast.js";
import { useJob as useVueJob } from "../../vue.js";

const client = new JobcastClient("ws://127.0.0.1:3001");

client.on("progres", () => {}); // error TS2345 (a kind that does not exist)
client.on("progress", (e) => e.results); // error TS2339 (progress updates carry no results)
client.on("complete", (e) => e.progress); // error TS2339 (job_complete carries no progress)
client.on("failed", (e) => e.error.toUpperCase()); // error TS2339 (error is {code, message, …})
client.on("connection", (c) => c.delayMs.toFixed()); // error TS2339 (delayMs only when reconnecting)
client.on("error", (e) => e.suggested_action); // error TS2339 (the client's own errors have none)

client.subscribe(42); // error TS2345 (job ids are strings)
client.subscribe("crawl-42", { last_seq: 3 }); // error TS2561 (the option is lastSeq, not the wire name)
client.cancel("crawl-42", { reason: "x" }); // error TS2345 (the reason is a string)
new JobcastClient("ws://x", { pingInterval: 1000 }); // error TS2561 (it is pingIntervalMs)
new JobcastClient("ws://x", { pingIntervalMs: undefined }); // error TS2379 (undefined would replace the default)
new JobcastClient("ws://x", { WebSocket: Object }); // error TS2322 (not a WebSocket class)
client.jobs.clear(); // error TS2339 (internal state is not part of the API)
KINDS.push("stage"); // error TS2339 (KINDS is frozen)

export async function statuses(): Promise<void> {
  const status = await client.status("crawl-42");
  if (status.status === "complete") return; // error TS2367 (it is "completed")
  const subscribed = await client.subscribe("crawl-42");
  subscribed.last_seq; // error TS2339 (the subscribed reply says after_seq)
  try {
    await client.cancel("crawl-42");
  } catch (err) {
    if (err instanceof JobcastError && err.code === "not_found") return; // error TS2367 (no such code)
  }
}

export function frames(frame: ServerFrame, message: UserMessageFrame): void {
  frame.seq; // error TS2339 (only job events have a seq: narrow on type first)
  message.title; // error TS2339 (hub envelopes have no title)
  if (frame.type === "job_failed") frame.error.suggestedAction; // error TS2551 (frames use the wire's names)
  if (frame.type === "progress") return; // error TS2367 (the frame type is progress_update)
}

export function vue(): void {
  const job = useVueJob(client, "crawl-42");
  job.progress; // error TS2339 (a ref: job.value.progress)
  job.value = job.value; // error TS2540 (read-only)
}
