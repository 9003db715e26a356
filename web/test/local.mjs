// Starts jobcast-local for a test: on a free port, on the embedded store or on DynamoDB Local
// (when JOBCAST_DYNAMODB_ENDPOINT is set), and stops it by its PID.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const binary = process.env.JOBCAST_LOCAL_BIN || `${repo}target/debug/jobcast-local`;

/** The stores to run every scenario on: memory always, DynamoDB Local when one is running. */
export const STORES = process.env.JOBCAST_DYNAMODB_ENDPOINT ? ["memory", "dynamodb"] : ["memory"];

export async function startLocal(store = "memory") {
  const args = ["--port", "0"];
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" };
  if (store === "dynamodb") {
    args.push("--store", "dynamodb", "--dynamodb-endpoint", process.env.JOBCAST_DYNAMODB_ENDPOINT);
    // Tables of its own: tests run side by side.
    const suffix = randomUUID().slice(0, 8);
    env.CONNECTIONS_TABLE_NAME = `web-connections-${suffix}`;
    env.JOBS_TABLE_NAME = `web-jobs-${suffix}`;
  }
  const child = spawn(binary, args, { env, stdio: ["ignore", "pipe", "inherit"] });
  const wsUrl = await new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`jobcast-local did not start: ${seen}`)), 30_000);
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`jobcast-local exited with ${code}: ${seen}`)));
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
