// A typed page script: one client for the page, a job followed live, the user's notifications,
// and every frame handled by its `type`. Type-checked against jobcast.d.ts by
// `npx tsc --noEmit -p web/tsconfig.json` (web/test/types.test.mjs).
import {
  type ConnectionChange,
  type JobEventFrame,
  type JobStatusFrame,
  type Json,
  type UserMessageFrame,
  JobcastClient,
  JobcastError,
  KINDS,
} from "../jobcast.js";

declare function getAccessToken(): Promise<string | null>;

const client = new JobcastClient("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod", {
  token: () => getAccessToken(), // asked again before every reconnect
  WebSocket, // the browser's (the default); Node 22's or `ws`'s fit too
  quietCheckMs: 30_000,
});

// --- one job, shown as a progress bar -----------------------------------------------------

interface Bar {
  percent: number;
  line: string;
  etaSeconds: number | null;
}
const bars = new Map<string, Bar>();

client.on("status", (s: JobStatusFrame) => {
  // A snapshot: where the job stood when we subscribed (or asked).
  bars.set(s.job_id, { percent: s.progress ?? 0, line: `${s.status}: ${s.message ?? ""}`, etaSeconds: null });
});

client.on("progress", (e) => {
  // e is a ProgressUpdateFrame: stage and progress are always there, the estimate may not be.
  bars.set(e.job_id, { percent: e.progress, line: `${e.stage}: ${e.message ?? ""}`, etaSeconds: e.estimated_seconds_remaining ?? null });
});

client.on("complete", (e) => {
  const pages = pageCount(e.results);
  bars.set(e.job_id, { percent: 100, line: pages === null ? "done" : `done: ${pages} pages`, etaSeconds: null });
});

client.on("failed", (e) => {
  const hint = e.error.suggested_action ? ` (${e.error.suggested_action})` : "";
  bars.set(e.job_id, { percent: bars.get(e.job_id)?.percent ?? 0, line: `failed at ${e.stage ?? "?"}: ${e.error.message}${hint}`, etaSeconds: null });
});

client.on("cancelled", (e) => console.info(`job ${e.job_id} cancelled`, e.reason ?? "no reason given"));

/** `results` is any JSON: look before you use it. */
function pageCount(results: Json | undefined): number | null {
  if (results && typeof results === "object" && !Array.isArray(results)) {
    const pages = results["pages"];
    if (typeof pages === "number") return pages;
  }
  return null;
}

// Every job event, narrowed on `type`: the compiler checks that each kind is handled.
function describe(e: JobEventFrame): string {
  switch (e.type) {
    case "progress_update":
      return `#${e.seq} ${e.stage} ${e.progress} %`;
    case "stage_complete":
      return `#${e.seq} ${e.stage} done`;
    case "job_complete":
      return `#${e.seq} complete`;
    case "job_failed":
      return `#${e.seq} failed: ${e.error.code}`;
    case "job_cancelled":
      return `#${e.seq} cancelled`;
    default:
      return unreachable(e);
  }
}
client.on("event", (e) => console.debug(describe(e)));

// --- the user's notifications: every tab of the user gets them ------------------------------

function toast(m: UserMessageFrame): { title: string; tone: "info" | "good" | "bad" } {
  switch (m.type) {
    case "notification": {
      // Flat as jobcast's publishers send it, or in the hub's envelope as the hub's do.
      const n = "payload" in m ? m.payload : m;
      return { title: n.title, tone: n.level === "success" ? "good" : n.level === "error" ? "bad" : "info" };
    }
    case "alert": {
      const a = "payload" in m ? m.payload : m;
      return { title: `${a.title} (${a.severity})`, tone: a.severity === "low" ? "info" : "bad" };
    }
    case "project_progress":
      return { title: `${m.payload.project_id}: ${m.payload.done}/${m.payload.total}`, tone: "info" };
    case "project_completed":
      return { title: `${m.payload.project_id} ${m.payload.status === "DONE" ? "finished" : "stopped"}`, tone: m.payload.errors ? "bad" : "good" };
    case "update":
      return { title: `update: ${Object.keys(m.payload).join(", ")}`, tone: "info" };
    default:
      return unreachable(m);
  }
}
client.on("notification", (m) => console.log(toast(m), m.message_id));

// --- connection and errors ------------------------------------------------------------------

client.on("connection", (c: ConnectionChange) => {
  if (c.state === "reconnecting") console.warn(`reconnecting in ${c.delayMs} ms (attempt ${c.attempt})`);
  else console.info(c.state);
});

client.on("error", (e) => {
  if (e.type === "error") console.warn(`the server refused ${e.action ?? "a frame"}: ${e.code}`, e.suggested_action);
  else if (e.job_id !== undefined) console.warn(`job ${e.job_id}: ${e.code}`);
  else console.warn(`connection: ${e.code} ${e.message}`);
});

console.debug("listener kinds:", KINDS.join(", "));

// --- follow a job, cancel it -----------------------------------------------------------------

export async function follow(jobId: string): Promise<void> {
  await client.connect();
  try {
    const subscribed = await client.subscribe(jobId);
    console.info(`following ${subscribed.job_id} after seq ${subscribed.after_seq}`);
  } catch (err) {
    if (err instanceof JobcastError && err.code === "forbidden") {
      bars.set(jobId, { percent: 0, line: "not your job", etaSeconds: null });
      return;
    }
    throw err;
  }
}

export async function cancel(jobId: string): Promise<boolean> {
  try {
    const status = await client.cancel(jobId, "cancelled by the user");
    return status.status === "cancelled" && status.cancel_requested;
  } catch (err) {
    if (err instanceof JobcastError && err.code === "job_finished") return false;
    throw err;
  }
}

export async function resumeFromStart(jobId: string): Promise<number | null> {
  await client.subscribe(jobId, { lastSeq: 0 }); // the job's whole log
  return client.lastSeq(jobId);
}

export function leave(jobId: string): Promise<void> {
  return client.unsubscribe(jobId).then((reply) => console.info(`left ${reply.job_id}`));
}

function unreachable(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`);
}
