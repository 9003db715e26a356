// jobcast client: watch long jobs live over one WebSocket, and never miss an event.
//
// A dependency-free ES module for browsers and Node 20+ (Node 20 needs
// `--experimental-websocket`, or pass any WHATWG-style WebSocket class as `options.WebSocket`).
//
//   import { JobcastClient } from "./jobcast.js";
//   const client = new JobcastClient("wss://abc.execute-api.eu-west-1.amazonaws.com/prod",
//                                    { token: () => getAccessToken() });
//   client.on("progress", (e) => render(e.job_id, e.progress, e.message));
//   client.on("complete", (e) => done(e.job_id, e.results));
//   await client.connect();
//   await client.subscribe("crawl-42");
//
// Guarantees: every job event reaches the `on(...)` listeners once and in `seq` order, across
// reconnects. The client remembers the last seq it delivered for each job, resubscribes with
// it after any reconnect (the server replays what was missed), drops anything it has already
// seen, and asks again from its last seq if it ever sees a gap.

const EVENT_KINDS = {
  progress_update: "progress",
  stage_complete: "stage",
  job_complete: "complete",
  job_failed: "failed",
  job_cancelled: "cancelled",
};
const TERMINAL = new Set(["job_complete", "job_failed", "job_cancelled"]);
const USER_MESSAGES = new Set(["notification", "alert", "project_progress", "project_completed", "update"]);

/** The `on(...)` kinds a listener may ask for. */
export const KINDS = Object.freeze([
  "progress", "stage", "complete", "failed", "cancelled", // job events, in seq order
  "event", // every job event, whatever its type
  "status", // job_status snapshots
  "notification", // user-level messages (notification, alert, project_*)
  "subscribed", "error", // replies
  "connection", // {state: "connecting" | "open" | "reconnecting" | "closed", attempt, delayMs}
]);

/** An `error` reply from the server, as a rejected request's reason. */
/** How many user message ids a client remembers, to show a redelivered message once. */
const SEEN_MESSAGES_KEPT = 1000;

export class JobcastError extends Error {
  constructor(reply) {
    super(reply.message || reply.code);
    this.name = "JobcastError";
    this.code = reply.code;
    this.action = reply.action;
    this.suggestedAction = reply.suggested_action;
  }
}

export class JobcastClient {
  /**
   * @param {string} url the WebSocket URL (wss://… for API Gateway, ws://localhost:… for jobcast-local)
   * @param {object} [options]
   * @param {string | (() => string | Promise<string>)} [options.token] a JWT, or a function that
   *   returns a fresh one for every (re)connect; sent as the `bearer.<jwt>` subprotocol
   * @param {typeof WebSocket} [options.WebSocket] the WebSocket class (default: the global one)
   * @param {number} [options.pingIntervalMs] keepalive period; API Gateway closes connections
   *   idle for 10 minutes (default 5 minutes)
   * @param {number} [options.pongTimeoutMs] a ping unanswered this long means a dead socket
   * @param {number} [options.initialBackoffMs] first reconnect delay ceiling (default 500)
   * @param {number} [options.maxBackoffMs] reconnect delay ceiling (default 30 s)
   * @param {number} [options.requestTimeoutMs] how long a request waits for its reply
   * @param {number} [options.quietCheckMs] a running job heard nothing of for this long is asked
   *   for its status; if it has moved on (its final event lost, say), the client resumes it from
   *   the last seq it delivered (default 60 s; 0 turns the check off)
   * @param {() => number} [options.random] jitter source, [0, 1)
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      pingIntervalMs: 5 * 60 * 1000,
      pongTimeoutMs: 10_000,
      initialBackoffMs: 500,
      maxBackoffMs: 30_000,
      requestTimeoutMs: 10_000,
      quietCheckMs: 60_000,
      random: Math.random,
      ...options,
    };
    this.WebSocket = this.options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) {
      throw new Error(
        "no WebSocket class: pass options.WebSocket, or run Node 20 with --experimental-websocket",
      );
    }
    this.listeners = new Map();
    /** job id → { lastSeq: number | null, finished: boolean, resyncing: boolean, heardAt: number } */
    this.jobs = new Map();
    this.pending = new Map();
    /** The ids of the user messages shown lately, oldest first: a redelivery is shown once. */
    this.seenMessages = new Set();
    this.nextCorrelation = 1;
    this.socket = null;
    this.attempt = 0;
    this.closedByUser = false;
    this.opened = null;
    this.timers = { reconnect: null, ping: null, pong: null, quiet: null };
  }

  /** Listens to `kind` (see KINDS); returns a function that stops listening. */
  on(kind, listener) {
    if (!KINDS.includes(kind)) throw new Error(`unknown kind ${kind}; expected one of ${KINDS.join(", ")}`);
    if (!this.listeners.has(kind)) this.listeners.set(kind, new Set());
    this.listeners.get(kind).add(listener);
    return () => this.listeners.get(kind).delete(listener);
  }

  /** Opens the connection; resolves once it is open. Reconnects by itself from then on. */
  connect() {
    this.closedByUser = false;
    if (!this.opened) {
      this.opened = new Promise((resolve) => {
        this.resolveOpened = resolve;
      });
      this.open();
    }
    return this.opened;
  }

  /** Closes for good: no reconnect. */
  close() {
    this.closedByUser = true;
    this.clearTimers();
    if (this.socket) this.socket.close(1000, "client closed");
    this.failPending(new Error("the client was closed"));
    this.emit("connection", { state: "closed", attempt: this.attempt });
  }

  /** The last seq delivered for a job (null before any). */
  lastSeq(jobId) {
    return this.jobs.get(jobId)?.lastSeq ?? null;
  }

  /**
   * Follows a job: resolves with the `subscribed` reply. Events after the last one this client
   * delivered follow. On a first subscribe a `status` snapshot comes first and events after it
   * follow, unless `lastSeq` says where to start (0: every event the job has had).
   */
  subscribe(jobId, { lastSeq = null } = {}) {
    if (!this.jobs.has(jobId)) {
      this.jobs.set(jobId, { lastSeq, finished: false, resyncing: false, heardAt: performance.now() });
    }
    return this.sendSubscribe(jobId);
  }

  /** Stops following a job. */
  unsubscribe(jobId) {
    this.jobs.delete(jobId);
    return this.request({ action: "unsubscribe", job_id: jobId });
  }

  /** Asks the server to cancel a job (its owner only); resolves with the job's new status. */
  cancel(jobId, reason) {
    const frame = { action: "cancel_job", job_id: jobId };
    if (reason) frame.reason = reason;
    return this.request(frame);
  }

  /** The job's latest snapshot. */
  status(jobId) {
    return this.request({ action: "request_status", job_id: jobId });
  }

  // ---------------------------------------------------------------------------------------

  sendSubscribe(jobId) {
    const job = this.jobs.get(jobId);
    const frame = { action: "subscribe", job_id: jobId };
    if (job && job.lastSeq !== null) frame.last_seq = job.lastSeq;
    return this.request(frame);
  }

  async open() {
    this.emit("connection", { state: "connecting", attempt: this.attempt });
    let protocols;
    try {
      const token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
      protocols = token ? ["jobcast", `bearer.${token}`] : undefined;
    } catch (err) {
      this.emit("error", { code: "token_unavailable", message: String(err) });
      this.scheduleReconnect();
      return;
    }
    if (this.closedByUser) return;
    let socket;
    try {
      socket = protocols ? new this.WebSocket(this.url, protocols) : new this.WebSocket(this.url);
    } catch (err) {
      this.emit("error", { code: "connect_failed", message: String(err) });
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.emit("connection", { state: "open", attempt: 0 });
      this.startPing();
      this.startQuietCheck();
      if (this.resolveOpened) {
        this.resolveOpened();
        this.resolveOpened = null;
      }
      // Resume every unfinished job from the last seq delivered.
      for (const [jobId, job] of this.jobs) {
        if (!job.finished) this.sendSubscribe(jobId).catch((err) => this.emit("error", errorInfo(err, jobId)));
      }
    };
    socket.onmessage = (message) => this.receive(message.data);
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearTimers();
      this.failPending(new Error("the connection closed"));
      if (!this.closedByUser) this.scheduleReconnect();
    };
    socket.onerror = () => {
      // A close always follows; reconnecting is its business.
    };
  }

  scheduleReconnect() {
    if (this.closedByUser) return;
    // Exponential backoff with full jitter: a fleet of tabs does not come back in lockstep.
    const ceiling = Math.min(this.options.maxBackoffMs, this.options.initialBackoffMs * 2 ** this.attempt);
    const delayMs = Math.round(this.options.random() * ceiling);
    this.attempt += 1;
    this.emit("connection", { state: "reconnecting", attempt: this.attempt, delayMs });
    this.timers.reconnect = setTimeout(() => this.open(), delayMs);
  }

  startPing() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      if (!this.isOpen()) return;
      this.write({ action: "ping" });
      // The oldest unanswered ping sets the deadline; later pings must not push it back.
      this.timers.pong ??= setTimeout(() => {
        // No pong: the socket is dead without knowing it. Closing starts a reconnect.
        this.timers.pong = null;
        if (this.socket) this.socket.close(4000, "ping timeout");
      }, this.options.pongTimeoutMs);
    }, this.options.pingIntervalMs);
  }

  /**
   * A lost final event leaves no gap to notice: nothing follows it. So a running job that has
   * been quiet for `quietCheckMs` is asked for its status, and resumed from the last seq
   * delivered if the job has gone further.
   */
  startQuietCheck() {
    clearInterval(this.timers.quiet);
    const quietMs = this.options.quietCheckMs;
    if (!quietMs) return;
    this.timers.quiet = setInterval(() => {
      if (!this.isOpen()) return;
      const now = performance.now();
      for (const [jobId, job] of this.jobs) {
        if (job.finished || job.resyncing || now - job.heardAt < quietMs) continue;
        job.heardAt = now;
        this.status(jobId)
          .then((status) => {
            if (status.last_seq > (job.lastSeq ?? 0) && this.jobs.get(jobId) === job) {
              job.resyncing = true;
              return this.sendSubscribe(jobId);
            }
          })
          .catch((err) => {
            job.resyncing = false;
            // A job this client may not see (or that expired) is asked about no more.
            if (err.code === "forbidden") this.jobs.delete(jobId);
            this.emit("error", errorInfo(err, jobId));
          });
      }
    }, Math.max(10, Math.floor(quietMs / 4)));
  }

  clearTimers() {
    clearTimeout(this.timers.reconnect);
    clearInterval(this.timers.quiet);
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.pong);
    this.timers.pong = null;
  }

  isOpen() {
    return this.socket && this.socket.readyState === 1;
  }

  write(frame) {
    this.socket.send(JSON.stringify(frame));
  }

  request(frame) {
    if (!this.isOpen()) return Promise.reject(new Error("not connected"));
    const correlationId = `c${this.nextCorrelation++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationId);
        reject(new Error(`no reply to ${frame.action} in ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this.pending.set(correlationId, { resolve, reject, timer });
      this.write({ ...frame, correlation_id: correlationId });
    });
  }

  failPending(err) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(err);
    }
    this.pending.clear();
  }

  settle(frame) {
    const waiting = frame.correlation_id && this.pending.get(frame.correlation_id);
    if (!waiting) return;
    this.pending.delete(frame.correlation_id);
    clearTimeout(waiting.timer);
    if (frame.type === "error") waiting.reject(new JobcastError(frame));
    else waiting.resolve(frame);
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "pong":
        clearTimeout(this.timers.pong);
        this.timers.pong = null;
        return;
      case "subscribed": {
        const job = this.jobs.get(frame.job_id);
        if (job) {
          // Events after `after_seq` follow; when the log could not cover the gap
          // (recovered: false) the status that follows is all there is. Never move back: a
          // late answer to an earlier subscribe would otherwise let its replay repeat events.
          job.lastSeq = job.lastSeq === null ? frame.after_seq : Math.max(job.lastSeq, frame.after_seq);
          job.resyncing = false;
          job.paused = false;
          job.heardAt = performance.now();
        }
        this.emit("subscribed", frame);
        this.settle(frame);
        return;
      }
      case "job_status": {
        const job = this.jobs.get(frame.job_id);
        if (job && (frame.status === "completed" || frame.status === "failed" || frame.status === "cancelled")) {
          job.finished = true;
        }
        this.emit("status", frame);
        this.settle(frame);
        return;
      }
      case "error":
        this.emit("error", frame);
        this.settle(frame);
        return;
      case "unsubscribed":
        this.settle(frame);
        return;
      case "replay_paused": {
        // One subscribe replays at most 500 events; the job has more. The connection no longer
        // follows it until we ask again from the last event delivered, when the server says
        // the replay is paid for (it was charged to this connection's frame allowance).
        const job = this.jobs.get(frame.job_id);
        if (job) {
          job.paused = true;
          job.heardAt = performance.now();
          this.resumePaused(frame.job_id, frame.retry_after_ms ?? 0);
        }
        return;
      }
      default:
        break;
    }
    if (EVENT_KINDS[frame.type]) {
      this.deliverJobEvent(frame);
    } else if (USER_MESSAGES.has(frame.type)) {
      if (frame.message_id) {
        if (this.seenMessages.has(frame.message_id)) return; // a redelivery: shown already
        this.seenMessages.add(frame.message_id);
        if (this.seenMessages.size > SEEN_MESSAGES_KEPT) {
          this.seenMessages.delete(this.seenMessages.values().next().value);
        }
      }
      this.emit("notification", frame);
    }
  }

  /** Subscribes again to a paused job after `delayMs`, and again every second until a
   *  `subscribed` answers (a subscribe refused with `rate_limited` carries no correlation id). */
  resumePaused(jobId, delayMs) {
    setTimeout(() => {
      const job = this.jobs.get(jobId);
      if (!job || !job.paused || !this.isOpen()) return;
      job.heardAt = performance.now();
      this.sendSubscribe(jobId).catch(() => {});
      this.resumePaused(jobId, Math.max(1000, delayMs));
    }, delayMs);
  }

  deliverJobEvent(frame) {
    const job = this.jobs.get(frame.job_id);
    if (!job) return; // unsubscribed meanwhile
    job.heardAt = performance.now();
    if (job.lastSeq !== null && frame.seq <= job.lastSeq) return; // seen already
    if (job.lastSeq !== null && frame.seq > job.lastSeq + 1) {
      // A gap: never show an event out of order. Ask again from what we have.
      if (!job.resyncing && this.isOpen()) {
        job.resyncing = true;
        this.sendSubscribe(frame.job_id).catch((err) => {
          job.resyncing = false;
          this.emit("error", errorInfo(err, frame.job_id));
        });
      }
      return;
    }
    if (job.resyncing) return; // the replay will bring it, in order
    job.lastSeq = frame.seq;
    if (TERMINAL.has(frame.type)) job.finished = true;
    this.emit(EVENT_KINDS[frame.type], frame);
    this.emit("event", frame);
  }

  emit(kind, payload) {
    for (const listener of this.listeners.get(kind) || []) {
      try {
        listener(payload);
      } catch (err) {
        // One faulty listener must not starve the others.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

function errorInfo(err, jobId) {
  return { code: err.code || "request_failed", message: err.message, job_id: jobId };
}
