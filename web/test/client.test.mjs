// The JS client in Node, against a real jobcast-local (both stores), and its reconnect,
// dedupe, gap and keepalive logic against a scripted socket.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { JobcastClient, JobcastError } from "../jobcast.js";
import { STORES, sleep, startLocal, until } from "./local.mjs";

for (const store of STORES) {
  describe(`against jobcast-local (${store} store)`, () => {
    let local;
    before(async () => {
      local = await startLocal(store);
    });
    after(async () => {
      await local.stop();
    });

    test("a connection dropped mid-job loses and repeats nothing", async () => {
      const jobId = `node-${store}-drop`;
      await local.invoke({ action: "register_job", job_id: jobId, user_id: "nora" });
      const client = new JobcastClient(`${local.wsUrl}/?user_id=nora`, { initialBackoffMs: 100 });
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
      assert.equal(await local.dropAllConnections(), 1);
      await until("the client is back", () => states.lastIndexOf("open") > states.indexOf("reconnecting"));
      await pipeline;
      await until("the job completed", () => completed === 1);
      await sleep(200);
      assert.deepEqual(seen, Array.from({ length: steps + 1 }, (_, i) => i + 1));
      assert.equal(client.lastSeq(jobId), steps + 1);
      client.close();
    });

    test("status, cancel and errors are answered as promises", async () => {
      const jobId = `node-${store}-cancel`;
      await local.invoke({ action: "register_job", job_id: jobId, user_id: "olga" });
      const client = new JobcastClient(`${local.wsUrl}/?user_id=olga`);
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

    test("a ping is answered, so a quiet connection stays open", async () => {
      const client = new JobcastClient(`${local.wsUrl}/?user_id=quiet`, { pingIntervalMs: 50, pongTimeoutMs: 2000 });
      const states = [];
      client.on("connection", (c) => states.push(c.state));
      await client.connect();
      await sleep(400);
      assert.deepEqual(states, ["connecting", "open"], "no reconnect: every ping had its pong");
      client.close();
    });
  });
}

/** A WebSocket the test drives: it records what the client sends and plays server frames. */
function scriptedSockets() {
  const sockets = [];
  class ScriptedSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {
      this.readyState = 3;
      this.onclose?.({ code: 1000 });
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

const event = (seq, type = "progress_update") => ({ type, job_id: "j", seq, stage: "s", progress: seq, message: "" });

test("the token travels as the bearer subprotocol", async () => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new JobcastClient("wss://example.test/prod", { WebSocket: ScriptedSocket, token: async () => "aaa.bbb.ccc" });
  const connected = client.connect();
  await until("a socket exists", () => sockets.length === 1);
  sockets[0].open();
  await connected;
  assert.deepEqual(sockets[0].protocols, ["jobcast", "bearer.aaa.bbb.ccc"]);
  client.close();
});

test("duplicates are dropped, a gap asks again from the last seq, and order holds", async () => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new JobcastClient("ws://x", { WebSocket: ScriptedSocket });
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

test("reconnects back off exponentially with full jitter, then resubscribe from the last seq", async () => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new JobcastClient("ws://x", { WebSocket: ScriptedSocket, initialBackoffMs: 10, maxBackoffMs: 40, random: () => 1 });
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
  const jitter = [];
  halves.on("connection", (c) => c.state === "reconnecting" && jitter.push(c.delayMs));
  halves.connect();
  await until("a socket exists", () => jittered.length === 1);
  jittered[0].close();
  assert.deepEqual(jitter, [50], "the delay is drawn uniformly below the ceiling");
  halves.close();
});

test("a ping without a pong closes the dead socket and reconnects", async () => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new JobcastClient("ws://x", { WebSocket: ScriptedSocket, pingIntervalMs: 20, pongTimeoutMs: 30, initialBackoffMs: 1 });
  const connected = client.connect();
  await until("a socket exists", () => sockets.length === 1);
  sockets[0].open();
  await connected;
  await until("a ping was sent", () => sockets[0].sent.some((f) => f.action === "ping"));
  await until("a new socket after the missing pong", () => sockets.length === 2);
  client.close();
});
