// The JS client in Node, against a real jobcast-local (both stores), and its reconnect,
// dedupe, gap and keepalive logic against a scripted socket.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { JobcastClient, JobcastError } from "../jobcast.js";
import { STORES, sleep, startLocal, until } from "./local.mjs";

/** Whether the connection states show a reconnect: "reconnecting", then "open" again. */
function reconnected(states) {
  const lost = states.indexOf("reconnecting");
  return lost !== -1 && states.indexOf("open", lost) !== -1;
}

/** Keepalive timings short enough to watch a pong timeout happen in a test. */
const KEEPALIVE = { pingIntervalMs: 50, pongTimeoutMs: 500 };

/**
 * The global WebSocket, watched: how many sockets the client opened, the pings it sent, the
 * pongs the server sent back, and what the client closed with. With `losePongs`, the pongs
 * never reach the client, as on a connection that died without a close.
 */
function watchedSockets({ losePongs = false } = {}) {
  const log = { sockets: 0, pings: 0, pongs: 0, closes: [], firstPingAt: null, closedAt: null };
  class Watched extends WebSocket {
    constructor(...args) {
      super(...args);
      log.sockets += 1;
    }
    send(text) {
      if (JSON.parse(text).action === "ping") {
        log.pings += 1;
        log.firstPingAt ??= performance.now();
      }
      super.send(text);
    }
    close(code, reason) {
      log.closes.push({ code, reason });
      log.closedAt ??= performance.now();
      super.close(code, reason);
    }
    get onmessage() {
      return super.onmessage;
    }
    set onmessage(listener) {
      super.onmessage = (message) => {
        if (JSON.parse(message.data).type === "pong") {
          log.pongs += 1;
          if (losePongs) return;
        }
        listener(message);
      };
    }
  }
  return { log, Watched };
}

for (const store of STORES) {
  describe(`against jobcast-local (${store} store)`, () => {
    let local;
    before(async () => {
      local = await startLocal(store);
    });
    after(async () => {
      await local?.stop();
    });

    test("a connection dropped mid-job loses and repeats nothing", async (t) => {
      const jobId = `node-${store}-drop`;
      await local.invoke({ action: "register_job", job_id: jobId, user_id: "nora" });
      const client = new JobcastClient(`${local.wsUrl}/?user_id=nora`, { initialBackoffMs: 100 });
      t.after(() => client.close());
      const seen = [];
      const states = [];
      let completed = 0;
      client.on("event", (e) => seen.push(e.seq));
      client.on("complete", () => completed++);
      client.on("connection", (c) => states.push(c.state));
      await client.connect();
      const subscribed = await client.subscribe(jobId, { lastSeq: 0 });
      assert.equal(subscribed.recovered, true);

      const steps = 30;
      const pipeline = (async () => {
        for (let step = 1; step <= steps; step++) {
          const answer = await local.invoke({
            job_id: jobId,
            event: { type: "progress_update", stage: "crawl", progress: (step * 100) / (steps + 1), message: `step ${step}` },
          });
          assert.equal(answer.outcome, "published", JSON.stringify(answer));
          await sleep(15);
        }
        await local.invoke({ job_id: jobId, event: { type: "job_complete", results: { steps } } });
      })();

      await until("8 events arrived", () => seen.length >= 8);
      const [dropped] = await local.connectionIds();
      assert.equal(await local.dropAllConnections(), 1);
      // The drop must be noticed and repaired: a client that never lost its socket would see
      // every event too, and prove nothing.
      await until("the client noticed the drop and is back", () => reconnected(states));
      const [current] = await local.connectionIds();
      assert.ok(current && current !== dropped, `a new connection (${dropped} was dropped, ${current} is open)`);
      await pipeline;
      await until("the job completed", () => completed === 1);
      // The answer to a request on the same socket comes after everything the server sent before
      // it: a late duplicate (a replay after the reconnect) would have been seen by now.
      const status = await client.status(jobId);
      assert.equal(status.status, "completed");
      assert.equal(status.last_seq, steps + 1);
      assert.deepEqual(seen, Array.from({ length: steps + 1 }, (_, i) => i + 1));
      assert.equal(client.lastSeq(jobId), steps + 1);
      assert.equal(states.filter((s) => s === "reconnecting").length, 1, `one reconnect: ${states}`);
      client.close();
    });

    test("a replay longer than one subscribe's share arrives whole and in order", async (t) => {
      // A subscribe replays at most 500 events, then says `replay_paused`; the client asks for
      // the next ones until it is live.
      const jobId = `node-${store}-long-replay`;
      const total = 1_050;
      await local.invoke({ action: "register_job", job_id: jobId, user_id: "pia" });
      for (let sent = 0; sent < total; sent += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, total - sent) }, (_, i) =>
            local.invoke({ job_id: jobId, event: { type: "progress_update", stage: "crawl", progress: 1, message: `${sent + i}` } }),
          ),
        );
      }
      const client = new JobcastClient(`${local.wsUrl}/?user_id=pia`);
      t.after(() => client.close());
      const seen = [];
      client.on("event", (e) => seen.push(e.seq));
      await client.connect();
      await client.subscribe(jobId, { lastSeq: 0 });
      await until("every logged event was replayed", () => seen.length >= total, 60_000);
      await local.invoke({ job_id: jobId, event: { type: "job_complete" } });
      await until("then the live one", () => seen.length === total + 1);
      assert.deepEqual(seen, Array.from({ length: total + 1 }, (_, i) => i + 1));
      client.close();
    });

    test("status, cancel and errors are answered as promises", async (t) => {
      const jobId = `node-${store}-cancel`;
      await local.invoke({ action: "register_job", job_id: jobId, user_id: "olga" });
      const client = new JobcastClient(`${local.wsUrl}/?user_id=olga`);
      t.after(() => client.close());
      const cancelled = [];
      client.on("cancelled", (e) => cancelled.push(e));
      await client.connect();
      await client.subscribe(jobId);
      const status = await client.status(jobId);
      assert.equal(status.type, "job_status");
      assert.equal(status.status, "pending");
      const afterCancel = await client.cancel(jobId, "not needed");
      assert.equal(afterCancel.status, "cancelled");
      await until("the broadcast arrived", () => cancelled.length === 1);
      assert.equal(cancelled[0].reason, "not needed");
      await assert.rejects(client.cancel(jobId), (err) => err instanceof JobcastError && err.code === "job_finished");
      await assert.rejects(client.status("not-mine"), (err) => err.code === "forbidden");
      const poll = await local.invoke({ action: "is_cancelled", job_id: jobId });
      assert.equal(poll.cancelled, true);
      client.close();
    });

    test("a ping is answered, so a quiet connection stays open", async (t) => {
      const { log, Watched } = watchedSockets();
      const client = new JobcastClient(`${local.wsUrl}/?user_id=quiet`, { WebSocket: Watched, ...KEEPALIVE });
      t.after(() => client.close());
      const states = [];
      client.on("connection", (c) => states.push(c.state));
      await client.connect();
      // Pings go out every 50 ms, so 25 pongs take at least 1.25 s: 2.5 pong timeouts, in
      // which a ping left unanswered would have closed the socket (see the next test).
      await until("25 pings were answered", () => log.pongs >= 25);
      assert.deepEqual(states, ["connecting", "open"], "no reconnect: every ping had its pong");
      assert.equal(log.sockets, 1, "one socket all along");
      assert.deepEqual(log.closes, [], "the client closed nothing");
      client.close();
    });

    test("a ping whose pong never reaches the client closes the socket and reconnects", async (t) => {
      // The server answers, but the pongs are lost on the way: the socket looks open and is dead.
      const { log, Watched } = watchedSockets({ losePongs: true });
      const client = new JobcastClient(`${local.wsUrl}/?user_id=deaf`, { WebSocket: Watched, ...KEEPALIVE, initialBackoffMs: 1 });
      t.after(() => client.close());
      const states = [];
      client.on("connection", (c) => states.push(c.state));
      await client.connect();
      await until("the client closed the socket", () => log.closes.length > 0);
      assert.deepEqual(log.closes[0], { code: 4000, reason: "ping timeout" });
      assert.ok(log.pongs > 0, "the server did answer: only the lost pongs made the client close");
      assert.ok(
        log.closedAt - log.firstPingAt >= KEEPALIVE.pongTimeoutMs - 1,
        `closed ${log.closedAt - log.firstPingAt} ms after the first ping, not before the pong timeout`,
      );
      await until("the client is back on a new socket", () => reconnected(states));
      assert.equal(log.sockets, 2);
      client.close();
    });
  });
}

/**
 * A WebSocket the test drives: it records what the client sends and how it closes the socket,
 * and plays server frames. With `answerPings`, every ping is answered with a pong, as the
 * server does: soon after, never within the `send` call.
 */
function scriptedSockets({ answerPings = false } = {}) {
  const sockets = [];
  class ScriptedSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.sentAt = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(text) {
      const frame = JSON.parse(text);
      this.sent.push(frame);
      this.sentAt.push(performance.now());
      if (answerPings && frame.action === "ping") {
        queueMicrotask(() => this.readyState === 1 && this.deliver({ type: "pong" }));
      }
    }
    close(code = 1005, reason = "") {
      this.closedWith = { code, reason, at: performance.now() };
      this.readyState = 3;
      this.onclose?.({ code });
    }
    open() {
      this.readyState = 1;
      this.onopen?.();
    }
    deliver(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
  }
  return { sockets, ScriptedSocket };
}

/**
 * A client on a scripted socket, connected and ready; closed when the test ends. `sockets`
 * are the scripted sockets' options, and `before` sees the client before it connects (to
 * listen from its first state on).
 */
async function scriptedClient(t, options = {}, { sockets: socketOptions, before } = {}) {
  const { sockets, ScriptedSocket } = scriptedSockets(socketOptions);
  const client = new JobcastClient("ws://x", { WebSocket: ScriptedSocket, ...options });
  t.after(() => client.close());
  before?.(client);
  const connected = client.connect();
  await until("a socket exists", () => sockets.length === 1);
  sockets[0].open();
  await connected;
  return { client, socket: sockets[0], sockets };
}

/** Subscribes `client` to job "j" from seq 0, answered on `socket`. */
async function subscribedFromStart(client, socket) {
  const subscribed = client.subscribe("j", { lastSeq: 0 });
  const ask = socket.sent.at(-1);
  socket.deliver({ type: "subscribed", job_id: "j", after_seq: 0, recovered: true, correlation_id: ask.correlation_id });
  await subscribed;
}

const event = (seq, type = "progress_update") => ({ type, job_id: "j", seq, stage: "s", progress: seq, message: "" });

test("the token travels as the bearer subprotocol", async (t) => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new JobcastClient("wss://example.test/prod", { WebSocket: ScriptedSocket, token: async () => "aaa.bbb.ccc" });
  t.after(() => client.close());
  const connected = client.connect();
  await until("a socket exists", () => sockets.length === 1);
  sockets[0].open();
  await connected;
  assert.deepEqual(sockets[0].protocols, ["jobcast", "bearer.aaa.bbb.ccc"]);
  client.close();
});

test("duplicates are dropped, a gap asks again from the last seq, and order holds", async (t) => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new JobcastClient("ws://x", { WebSocket: ScriptedSocket });
  t.after(() => client.close());
  const seen = [];
  client.on("event", (e) => seen.push(e.seq));
  const connected = client.connect();
  await until("a socket exists", () => sockets.length === 1);
  const socket = sockets[0];
  socket.open();
  await connected;
  const subscribed = client.subscribe("j", { lastSeq: 0 });
  assert.deepEqual(socket.sent.at(-1), { action: "subscribe", job_id: "j", last_seq: 0, correlation_id: "c1" });
  socket.deliver({ type: "subscribed", job_id: "j", after_seq: 0, recovered: true, correlation_id: "c1" });
  await subscribed;
  socket.deliver(event(1));
  socket.deliver(event(2));
  socket.deliver(event(2)); // a duplicate
  socket.deliver(event(1)); // an old one
  socket.deliver(event(4)); // a gap: 3 is missing
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual(socket.sent.at(-1), { action: "subscribe", job_id: "j", last_seq: 2, correlation_id: "c2" });
  socket.deliver(event(5)); // still resyncing: held back
  socket.deliver({ type: "subscribed", job_id: "j", after_seq: 2, recovered: true, correlation_id: "c2" });
  socket.deliver(event(3));
  socket.deliver(event(4));
  // A late answer to an older subscribe, and its replay, repeat nothing.
  socket.deliver({ type: "subscribed", job_id: "j", after_seq: 2, recovered: true });
  socket.deliver(event(3));
  socket.deliver(event(4));
  socket.deliver(event(5, "job_complete"));
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  client.close();
});

test("reconnects back off exponentially with full jitter, then resubscribe from the last seq", async (t) => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new JobcastClient("ws://x", { WebSocket: ScriptedSocket, initialBackoffMs: 10, maxBackoffMs: 40, random: () => 1 });
  t.after(() => client.close());
  const delays = [];
  client.on("connection", (c) => c.state === "reconnecting" && delays.push(c.delayMs));
  const connected = client.connect();
  await until("a socket exists", () => sockets.length === 1);
  sockets[0].open();
  await connected;
  client.subscribe("j", { lastSeq: 0 });
  sockets[0].deliver({ type: "subscribed", job_id: "j", after_seq: 0, recovered: true, correlation_id: "c1" });
  sockets[0].deliver(event(1));
  sockets[0].deliver(event(2));
  for (let failures = 1; failures <= 4; failures++) {
    sockets.at(-1).close();
    await until(`attempt ${failures + 1}`, () => sockets.length === failures + 1);
  }
  assert.deepEqual(delays, [10, 20, 40, 40], "doubling, capped at maxBackoffMs (random() = 1 is the ceiling)");
  sockets.at(-1).open();
  assert.deepEqual(sockets.at(-1).sent.at(-1), { action: "subscribe", job_id: "j", last_seq: 2, correlation_id: "c2" });
  client.close();

  const { sockets: jittered, ScriptedSocket: Jittered } = scriptedSockets();
  const halves = new JobcastClient("ws://x", { WebSocket: Jittered, initialBackoffMs: 100, random: () => 0.5 });
  t.after(() => halves.close());
  const jitter = [];
  halves.on("connection", (c) => c.state === "reconnecting" && jitter.push(c.delayMs));
  halves.connect();
  await until("a socket exists", () => jittered.length === 1);
  jittered[0].close();
  assert.deepEqual(jitter, [50], "the delay is drawn uniformly below the ceiling");
  halves.close();
});

const QUICK_PINGS = { pingIntervalMs: 20, pongTimeoutMs: 30, initialBackoffMs: 1 };

test("a ping without a pong closes the dead socket and reconnects", async (t) => {
  const states = [];
  const listen = { before: (client) => client.on("connection", (c) => states.push(c.state)) };
  const { client, socket: dead, sockets } = await scriptedClient(t, QUICK_PINGS, listen);
  await until("a ping was sent", () => dead.sent.some((f) => f.action === "ping"));
  await until("the client closed the socket", () => dead.closedWith);
  assert.equal(dead.closedWith.code, 4000);
  assert.equal(dead.closedWith.reason, "ping timeout");
  const firstPing = dead.sentAt[dead.sent.findIndex((f) => f.action === "ping")];
  assert.ok(dead.closedWith.at - firstPing >= 30 - 1, "closed once the pong timeout ran out, not before");
  assert.ok(dead.sent.every((f) => f.action === "ping"), "nothing but pings went out");
  await until("a new socket after the missing pong", () => sockets.length === 2);
  sockets[1].open();
  assert.deepEqual(states, ["connecting", "open", "reconnecting", "connecting", "open"]);
  client.close();
});

test("pings that are answered keep the socket open", async (t) => {
  const states = [];
  const { client, sockets } = await scriptedClient(t, QUICK_PINGS, {
    sockets: { answerPings: true },
    before: (client) => client.on("connection", (c) => states.push(c.state)),
  });
  // 15 pings 20 ms apart span at least 280 ms: over 9 pong timeouts, any of which would have
  // closed the socket (as the previous test shows) had its pong not cleared it.
  await until("15 pings were answered", () => sockets[0].sent.filter((f) => f.action === "ping").length >= 15);
  assert.equal(sockets[0].closedWith, null, "the socket was never closed");
  assert.equal(sockets.length, 1, "no reconnect");
  assert.deepEqual(states, ["connecting", "open"]);
  client.close();
});

test("a lost final event is noticed after a quiet spell, and the job resumed from its last seq", async (t) => {
  const { client, socket } = await scriptedClient(t, { quietCheckMs: 100 });
  const seen = [];
  client.on("event", (e) => seen.push(e.seq));
  await subscribedFromStart(client, socket);
  socket.deliver(event(1));
  socket.deliver(event(2));
  // seq 3, the job's completion, never arrives. Quiet for 100 ms: the client asks.
  const startedAt = performance.now();
  await until("a status request", () => socket.sent.some((f) => f.action === "request_status"));
  assert.ok(performance.now() - startedAt >= 90, "not before the quiet spell");
  const ask = socket.sent.find((f) => f.action === "request_status");
  assert.equal(ask.job_id, "j");
  socket.deliver({
    type: "job_status", job_id: "j", status: "completed", last_seq: 3, cancel_requested: false,
    updated_at: new Date().toISOString(), correlation_id: ask.correlation_id,
  });
  // The job went further than we heard: resubscribe from 2, and the replay brings 3.
  await until("a resubscribe", () => socket.sent.at(-1).action === "subscribe");
  const resubscribe = socket.sent.at(-1);
  assert.equal(resubscribe.last_seq, 2);
  socket.deliver({ type: "subscribed", job_id: "j", after_seq: 2, recovered: true, correlation_id: resubscribe.correlation_id });
  socket.deliver(event(3, "job_complete"));
  assert.deepEqual(seen, [1, 2, 3]);
  // A finished job is asked about no more.
  const asked = socket.sent.filter((f) => f.action === "request_status").length;
  await sleep(300);
  assert.equal(socket.sent.filter((f) => f.action === "request_status").length, asked);
  client.close();
});

test("a job that is heard from is not asked about", async (t) => {
  const { client, socket } = await scriptedClient(t, { quietCheckMs: 200 });
  await subscribedFromStart(client, socket);
  for (let seq = 1; seq <= 8; seq++) {
    await sleep(60);
    socket.deliver(event(seq));
  }
  assert.equal(socket.sent.filter((f) => f.action === "request_status").length, 0);
  client.close();
});

test("a user message delivered twice is shown once, by its message_id", async (t) => {
  const { client, sockets } = await scriptedClient(t);
  const shown = [];
  client.on("notification", (n) => shown.push(n.message_id ?? n.title));
  const note = (id, title) => ({ type: "notification", title, message: "", level: "info", message_id: id, timestamp: new Date().toISOString() });
  sockets[0].deliver(note("m-1", "first"));
  sockets[0].deliver(note("m-1", "first")); // SQS redelivered it
  sockets[0].deliver(note("m-2", "second"));
  // A hub frame without an id is shown as it comes.
  sockets[0].deliver({ type: "notification", title: "plain", message: "", level: "info", timestamp: new Date().toISOString() });
  sockets[0].deliver({ type: "notification", title: "plain", message: "", level: "info", timestamp: new Date().toISOString() });
  assert.deepEqual(shown, ["m-1", "m-2", "plain", "plain"]);
  client.close();
});
