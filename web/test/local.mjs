// Starts jobcast-local for a test: on a free port, on the embedded store or on DynamoDB Local
// (when JOBCAST_DYNAMODB_ENDPOINT is set), and stops it by its PID.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../", import.meta.url));
// The test command's build (every feature, DynamoDB's included), else `cargo build -p jobcast-local`'s
// (the in-memory store only).
const binary =
  process.env.JOBCAST_LOCAL_BIN ||
  [`${repo}target/tests/jobcast-local`, `${repo}target/debug/jobcast-local`].find((path) => existsSync(path)) ||
  `${repo}target/debug/jobcast-local`;

/** The stores to run every scenario on: memory always, DynamoDB Local when one is running. */
export const STORES = process.env.JOBCAST_DYNAMODB_ENDPOINT ? ["memory", "dynamodb"] : ["memory"];

/**
 * With `keepLogs`, the server's log lines come as JSON, kept in `logs` for a test to look at;
 * warnings and errors still reach stderr. `watchDemo` keeps them too, with the demo pipelines'
 * own (info) lines. `args` are added to the command line (after `--port 0`), `env` to the
 * environment.
 */
export async function startLocal(store = "memory", { watchDemo = false, keepLogs = watchDemo, args: extraArgs = [], env: extraEnv = {} } = {}) {
  const args = ["--port", "0", ...extraArgs];
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn", ...extraEnv };
  if (keepLogs) env.LOG_FORMAT = "json";
  if (watchDemo) env.RUST_LOG += ",jobcast_local::demo=info";
  if (store === "dynamodb") {
    args.push("--store", "dynamodb", "--dynamodb-endpoint", process.env.JOBCAST_DYNAMODB_ENDPOINT);
    // Tables of its own: tests run side by side.
    const suffix = randomUUID().slice(0, 8);
    env.CONNECTIONS_TABLE_NAME = `web-connections-${suffix}`;
    env.JOBS_TABLE_NAME = `web-jobs-${suffix}`;
  }
  const child = spawn(binary, args, { env, stdio: ["ignore", "pipe", keepLogs ? "pipe" : "inherit"] });
  const logs = [];
  if (keepLogs) {
    createInterface({ input: child.stderr }).on("line", (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = null;
      }
      if (entry && typeof entry === "object") logs.push(entry);
      if (!entry || entry.level === "WARN" || entry.level === "ERROR") process.stderr.write(`${line}\n`);
    });
  }
  const wsUrl = await new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`jobcast-local did not start: ${seen}`)), 30_000);
    // A failed start must not leave the timer holding the test process open.
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`jobcast-local exited with ${code}: ${seen}`));
    });
    child.stdout.on("data", (chunk) => {
      seen += chunk;
      const match = /listening on (ws:\/\/[^\s]+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  const httpUrl = wsUrl.replace(/^ws/, "http");
  return {
    wsUrl,
    httpUrl,
    pid: child.pid,
    /** The server's log lines as objects (only with `keepLogs` or `watchDemo`). */
    logs,
    async stop() {
      child.removeAllListeners("exit");
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(child.pid, "SIGTERM");
      await exited;
    },
    /** Invokes the sender, as a pipeline does. */
    async invoke(payload) {
      const response = await fetch(`${httpUrl}/2015-03-31/functions/sender/invocations`, {
        method: "POST",
        body: JSON.stringify(payload),
      });
      return response.json();
    },
    /** The ids of the open connections. */
    async connectionIds() {
      const { connections } = await (await fetch(`${httpUrl}/connections`)).json();
      return connections.map(({ connection_id }) => connection_id);
    },
    /** Drops every open connection from the server side, as API Gateway may at any time. */
    async dropAllConnections() {
      const { connections } = await (await fetch(`${httpUrl}/connections`)).json();
      for (const { connection_id } of connections) {
        const response = await fetch(`${httpUrl}/@connections/${encodeURIComponent(connection_id)}`, { method: "DELETE" });
        if (response.status !== 204) throw new Error(`DELETE @connections answered ${response.status}`);
      }
      return connections.length;
    },
  };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `check()` is truthy; fails after `timeoutMs`. */
export async function until(what, check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(25);
  }
}
