// The notification hub's frontend, unchanged, on jobcast: a page with the hub's own
// WebSocketService (test/hub/, which knows nothing of jobcast) opens ws://…/ws with the
// `access_token` cookie, in a real browser (Debian's Chromium, driven by Playwright), against
// `jobcast-local --auth jwt --stage ws --redis-url …` and a real redis-server. The hub's
// publishers `PUBLISH user_noti:{user}` with redis-cli: every message type reaches every tab of
// that user in the shape the frontend reads, and no other user's; a malformed message is logged,
// counted and not forwarded; Redis killed and restarted mid-stream is survived, the browser's
// socket never dropping.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { delimiter, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { chromium } from "playwright-core";

import { sleep, startLocal, until } from "./local.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
/** `name`'s full path, found on PATH (Debian's is /usr/bin). */
const onPath = (name) =>
  (process.env.PATH || "")
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, name))
    .find((path) => existsSync(path)) ?? `/usr/bin/${name}`;
const REDIS_SERVER = process.env.REDIS_SERVER_PATH || onPath("redis-server");
const REDIS_CLI = process.env.REDIS_CLI_PATH || onPath("redis-cli");
const HUB = fileURLToPath(new URL("./hub/", import.meta.url));
const SECRET = randomBytes(32).toString("hex");
/** How long a tab must stay silent for "nothing arrived" to count. */
const QUIET_MS = 300;

const runFile = promisify(execFile);

const missing = [REDIS_SERVER, REDIS_CLI].filter((path) => !existsSync(path));
const skip = missing.length > 0 && `redis-server is not installed (${missing.join(", ")} missing; set REDIS_SERVER_PATH and REDIS_CLI_PATH, or apt-get install redis-server)`;

/** An HS256 JWT for `sub`, as the hub's login would set in the `access_token` cookie. */
function jwt(sub) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub, iat: now, exp: now + 600 })}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

async function freePort() {
  const server = createNetServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function redisCli(port, ...args) {
  const { stdout } = await runFile(REDIS_CLI, ["-p", String(port), ...args], { timeout: 5_000 });
  return stdout.trim();
}

/** A redis-server on `port`, keeping nothing on disk; answers PONG before this resolves. */
async function startRedis(port) {
  const child = spawn(REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk) => {
    output = (output + chunk).slice(-4_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  child.once("error", (err) => keep(String(err)));
  await until(
    `redis-server answers on ${port}`,
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited: ${output}`);
      return (await redisCli(port, "ping").catch(() => "")) === "PONG";
    },
    5_000,
  );
  return {
    pid: child.pid,
    /** Stops it by its PID with `signal` and waits until it has exited. */
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, signal);
      return exited;
    },
  };
}

/** Serves the hub's page and its WebSocketService: another origin than jobcast-local's. */
async function startPageServer() {
  const files = new Map([
    ["/", ["text/html; charset=utf-8", readFileSync(`${HUB}index.html`)]],
    ["/websocket-service.js", ["text/javascript; charset=utf-8", readFileSync(`${HUB}websocket-service.js`)]],
  ]);
  const server = createServer((request, response) => {
    const file = files.get(new URL(request.url, "http://x").pathname);
    response.writeHead(file ? 200 : 404, { "content-type": file ? file[0] : "text/plain" });
    response.end(file ? file[1] : "not found");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** A Prometheus sample's value (0 when absent). */
function sample(text, series) {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

const RFC3339_UTC_MILLIS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe("the hub's unchanged frontend on jobcast-local (--auth jwt --stage ws --redis-url)", { skip }, () => {
  let redisPort;
  let redis;
  let pages;
  let local;
  let browser;
  /** The tabs: two of u1's (one browser context, one cookie) and one of u2's. */
  const tabs = {};
  const problems = [];

  const health = async () => {
    const response = await fetch(`${local.httpUrl}/health`);
    return { code: response.status, ...(await response.json()) };
  };
  const metrics = async () => (await fetch(`${local.httpUrl}/metrics`)).text();
  const received = (tab) => tab.evaluate(() => window.hub.received);
  const receivedCount = (tab) => tab.evaluate(() => window.hub.received.length);
  const waitForCount = (tab, count) =>
    tab.waitForFunction((n) => window.hub.received.length >= n, count, { timeout: 5_000, polling: 20 });

  /** `PUBLISH channel message` with redis-cli, as the hub's backend services do. */
  async function publish(channel, message) {
    const text = typeof message === "string" ? message : JSON.stringify(message);
    const listeners = await redisCli(redisPort, "PUBLISH", channel, text);
    assert.equal(listeners, "1", `the bridge (and only it) is subscribed when ${channel} is published to`);
  }

  before(async () => {
    redisPort = await freePort();
    [redis, pages, browser] = await Promise.all([
      startRedis(redisPort),
      startPageServer(),
      chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
      }),
    ]);
    // The page comes from another origin than the API's, so the cookie connects only with that
    // origin listed (docs/security.md).
    local = await startLocal("memory", {
      keepLogs: true,
      args: ["--auth", "jwt", "--stage", "ws", "--redis-url", `redis://127.0.0.1:${redisPort}`],
      env: { JWT_HS256_SECRET: SECRET, ALLOWED_ORIGINS: pages.origin },
    });

    const contexts = {};
    for (const user of ["u1", "u2"]) {
      contexts[user] = await browser.newContext();
      // 127.0.0.1 (any port): the browser attaches it to the upgrade to jobcast-local.
      await contexts[user].addCookies([
        { name: "access_token", value: jwt(user), domain: "127.0.0.1", path: "/", httpOnly: true, sameSite: "Lax" },
      ]);
    }
    const hubUrl = `${pages.origin}/?ws=${encodeURIComponent(`${local.wsUrl}/ws`)}`;
    for (const [name, user] of [
      ["u1a", "u1"],
      ["u1b", "u1"],
      ["u2", "u2"],
    ]) {
      const tab = await contexts[user].newPage();
      tab.on("pageerror", (err) => problems.push(`${name}: page error: ${err}`));
      tab.on("console", (message) => {
        if (message.type() === "error" || message.type() === "warning") problems.push(`${name}: ${message.type()}: ${message.text()}`);
      });
      await tab.goto(hubUrl);
      await tab.waitForSelector("#connection[data-status=connected]", { state: "attached", timeout: 5_000 });
      tabs[name] = tab;
    }
    await until("the bridge is subscribed and the three tabs connected", async () => {
      const h = await health();
      return h.subscriber?.active === true && h.connections === 3 && h;
    }, 5_000);
  });

  after(async () => {
    await browser?.close();
    await pages?.close();
    await local?.stop();
    await redis?.stop("SIGTERM");
    assert.deepEqual(problems, [], "no script errors or warnings in the hub's page");
  });

  test("every message type reaches both of u1's tabs as the hub's frontend reads it", { timeout: 10_000 }, async () => {
    const sentAfter = Date.now();
    const published = [
      { type: "notification", payload: { title: "Export ready", message: "Your CSV is ready.", level: "success" } },
      { type: "alert", payload: { title: "Quota", message: "90 % of your crawl budget is used", severity: "high" } },
      {
        type: "project_progress",
        payload: { project_id: "site-audit-7", status: "CRAWLING", total: 120, done: 48, errors: 2, progress_percent: 40.0 },
        timestamp: new Date().toISOString(),
      },
      {
        type: "project_completed",
        payload: { project_id: "site-audit-7", status: "DONE", total: 120, done: 118, errors: 2, progress_percent: 100.0 },
        // Another offset: the frontend reads it in UTC.
        timestamp: "2026-11-24T09:30:00.250+02:00",
      },
      { type: "update", payload: { kind: "settings", changes: { theme: "dark", tags: ["a", "b"], limit: null }, note: "Grüße ✓" } },
    ];
    for (const message of published) await publish("user_noti:u1", message);

    for (const name of ["u1a", "u1b"]) {
      await waitForCount(tabs[name], published.length);
      const got = await received(tabs[name]);
      assert.deepEqual(
        got.map(({ type }) => type),
        published.map(({ type }) => type),
        `${name}: every type once, in the order published`,
      );
      for (const [i, message] of published.entries()) {
        assert.deepEqual(got[i].payload, message.payload, `${name}: the ${message.type} payload as published`);
        assert.match(got[i].timestamp, RFC3339_UTC_MILLIS, `${name}: ${message.type} has an RFC 3339 UTC timestamp`);
        if (message.timestamp) {
          assert.equal(got[i].timestamp, new Date(message.timestamp).toISOString(), `${name}: ${message.type} keeps its publisher's time`);
        } else {
          const at = Date.parse(got[i].timestamp);
          assert.ok(at >= sentAfter - 1_000 && at <= Date.now() + 1_000, `${name}: ${message.type} stamped when sent (${got[i].timestamp})`);
        }
      }
      // The page rendered each into its list.
      const rendered = await tabs[name].evaluate(() =>
        [...document.querySelectorAll("li[data-type]")].map((li) => ({ type: li.dataset.type, payload: JSON.parse(li.dataset.payload) })),
      );
      assert.deepEqual(
        rendered.sort((a, b) => a.type.localeCompare(b.type)),
        published.map(({ type, payload }) => ({ type, payload })).sort((a, b) => a.type.localeCompare(b.type)),
      );
      assert.equal(
        await tabs[name].textContent("#notification li:first-child"),
        `${got[0].timestamp} [success] Export ready: Your CSV is ready.`,
      );
    }
  });

  test("a malformed message is logged, counted and not forwarded; the next good one is", { timeout: 10_000 }, async () => {
    const before = { u1a: await receivedCount(tabs.u1a), u1b: await receivedCount(tabs.u1b) };
    await publish("user_noti:u1", '{"type":"notification","payload":{"title":"bad JSON"');
    await publish("user_noti:u1", { type: "notification", payload: { title: "Too loud", message: "m", level: "loud" } });
    await publish("user_noti:u1", { type: "confetti", payload: { colour: "gold" } });
    const good = { type: "notification", payload: { title: "After the bad ones", message: "still here", level: "info" } };
    await publish("user_noti:u1", good);

    // One user's messages keep their order: once the good one is in, any bad one forwarded
    // would be in too.
    for (const name of ["u1a", "u1b"]) {
      await waitForCount(tabs[name], before[name] + 1);
      const since = (await received(tabs[name])).slice(before[name]);
      assert.deepEqual(since.map(({ type, payload }) => ({ type, payload })), [good], `${name}: only the good message`);
    }
    const text = await metrics();
    assert.ok(sample(text, 'jobcast_bridge_messages_rejected_total{reason="malformed"}') >= 2, text);
    assert.ok(sample(text, 'jobcast_bridge_messages_rejected_total{reason="unknown_type"}') >= 1, text);
    // Logged, saying why.
    const notForwarded = local.logs.filter((line) => line.message === "message not forwarded" && line.channel === "user_noti:u1");
    assert.equal(notForwarded.length, 3, JSON.stringify(notForwarded));
    assert.match(notForwarded[0].reason, /^malformed/);
    assert.match(notForwarded[1].reason, /^malformed.*level/s);
    assert.match(notForwarded[2].reason, /^unknown message type "confetti"/);
  });

  test("Redis killed and restarted mid-stream: the bridge comes back, the browser's socket never drops", { timeout: 12_000 }, async () => {
    const before = { u1a: await receivedCount(tabs.u1a), u1b: await receivedCount(tabs.u1b) };
    await publish("user_noti:u1", { type: "project_progress", payload: { project_id: "p-9", status: "PROCESSING", total: 10, done: 3, errors: 0, progress_percent: 30 }, timestamp: new Date().toISOString() });
    for (const name of ["u1a", "u1b"]) await waitForCount(tabs[name], before[name] + 1);

    assert.deepEqual((await redis.stop("SIGKILL")).signal, "SIGKILL");
    const away = await until("the bridge reports Redis gone", async () => {
      const h = await health();
      return h.subscriber?.active === false && h;
    }, 5_000);
    assert.equal(away.status, "degraded", JSON.stringify(away));
    assert.equal(away.code, 503, "a health check that reads only the status sees the outage");
    assert.equal(away.store.reachable, true);

    redis = await startRedis(redisPort);
    const back = await until("the bridge is subscribed again", async () => {
      const h = await health();
      return h.subscriber?.active === true && h;
    }, 8_000);
    assert.equal(back.status, "ok", JSON.stringify(back));
    assert.equal(back.code, 200);
    assert.equal(back.connections, 3, "no socket dropped");
    const counters = await metrics();
    assert.ok(sample(counters, "jobcast_bridge_redis_reconnects_total") >= 1, counters);
    assert.equal(sample(counters, "jobcast_bridge_redis_connected"), 1, counters);

    const afterRestart = { type: "project_completed", payload: { project_id: "p-9", status: "DONE", total: 10, done: 10, errors: 0, progress_percent: 100 }, timestamp: new Date().toISOString() };
    await publish("user_noti:u1", afterRestart);
    for (const name of ["u1a", "u1b"]) {
      await waitForCount(tabs[name], before[name] + 2);
      const since = (await received(tabs[name])).slice(before[name]);
      assert.deepEqual(since.map(({ type }) => type), ["project_progress", "project_completed"], name);
      assert.deepEqual(since[1].payload, afterRestart.payload);
      assert.equal(since[1].timestamp, new Date(afterRestart.timestamp).toISOString());
    }
    // The page's WebSocketService never noticed: one connect, never closed, never retried.
    for (const [name, tab] of Object.entries(tabs)) {
      assert.deepEqual(await tab.evaluate(() => window.hub.statuses), ["connecting", "connected"], `${name}: the socket stayed open`);
      assert.equal(await tab.evaluate(() => window.hub.service.isConnected()), true);
    }
  });

  test("no message for u1 reached u2's tab; u2's own messages reach only u2", { timeout: 5_000 }, async () => {
    await sleep(QUIET_MS);
    assert.deepEqual(await received(tabs.u2), [], "u2 heard nothing of u1's");

    const counts = { u1a: await receivedCount(tabs.u1a), u1b: await receivedCount(tabs.u1b) };
    const own = { type: "alert", payload: { title: "For u2", message: "yours only", severity: "low" } };
    await publish("user_noti:u2", own);
    await waitForCount(tabs.u2, 1);
    assert.deepEqual((await received(tabs.u2)).map(({ type, payload }) => ({ type, payload })), [own]);
    await sleep(QUIET_MS);
    assert.equal(await receivedCount(tabs.u2), 1);
    for (const name of ["u1a", "u1b"]) assert.equal(await receivedCount(tabs[name]), counts[name], `${name} heard nothing of u2's`);
  });
});
