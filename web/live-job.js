// The state every `useJob` shares (react.js, vue.js): one watch per client and job — one
// subscription, one frozen state object replaced on every change — whichever framework shows it.
// Framework-free, so the two bindings cannot drift apart.
/** Every useJob of a page shares one watch per client and job: one subscription, one state. */
const REGISTRY = Symbol.for("jobcast.liveJobs.v1");

function registryOf(client) {
  const all = (globalThis[REGISTRY] ??= new WeakMap());
  let registry = all.get(client);
  if (!registry) {
    // watches: job id → Watch; leaving: job id → the unsubscribe under way for it.
    registry = { watches: new Map(), leaving: new Map() };
    all.set(client, registry);
  }
  return registry;
}

const IDLE = {
  status: null,
  progress: null,
  stage: null,
  message: null,
  estimatedSecondsRemaining: null,
  seq: null,
  lastEvent: null,
  results: undefined,
  failure: null,
  subscribed: false,
  error: null,
  completed: false,
  failed: false,
  cancelled: false,
  finished: false,
};

/** The state of a job nothing is known of yet. */
export function idleJob(jobId = null) {
  return Object.freeze({ jobId, ...IDLE });
}

function flags(status) {
  return {
    completed: status === "completed",
    failed: status === "failed",
    cancelled: status === "cancelled",
    finished: status === "completed" || status === "failed" || status === "cancelled",
  };
}

/** Follows one job through one client for every useJob that shows it. */
class Watch {
  constructor(client, jobId, registry) {
    this.client = client;
    this.jobId = jobId;
    this.registry = registry;
    this.state = idleJob(jobId);
    this.listeners = new Set();
    this.refs = 0;
    this.stopTimer = null;
    this.stopped = false;
    this.offs = [];
    /** Whether the first subscribe's own `job_status` is still to come. */
    this.snapshotComing = false;
  }

  update(patch) {
    this.state = Object.freeze({ ...this.state, ...patch });
    for (const listener of this.listeners) listener(this.state);
  }

  listen(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(lastSeq) {
    const { client, jobId } = this;
    this.offs = [
      client.on("status", (frame) => frame.job_id === jobId && this.applyStatus(frame)),
      client.on("event", (frame) => frame.job_id === jobId && this.applyEvent(frame)),
      client.on("subscribed", (frame) => frame.job_id === jobId && this.subscribed(frame)),
      // The client's own failures for this job (a resubscribe after a reconnect refused, say).
      client.on("error", (info) => {
        if (info.type === undefined && info.job_id === jobId) this.update({ error: asError(info) });
      }),
      client.on("connection", ({ state }) => {
        if (state !== "open" && this.state.subscribed) this.update({ subscribed: false });
      }),
    ];
    const subscribe = () => {
      if (this.stopped) return;
      // A subscribe from a seq (asked for, or the client's own for a job it follows already)
      // brings no snapshot; a plain one does.
      this.snapshotComing = lastSeq == null && client.lastSeq(jobId) === null;
      client.subscribe(jobId, { lastSeq }).catch((err) => this.refused(err));
    };
    // The server handles each frame on its own: a subscribe sent while an unsubscribe of the
    // same job is under way could be handled first, and then undone. Wait for its answer.
    const leaving = this.registry.leaving.get(jobId);
    if (leaving) leaving.then(subscribe);
    else subscribe();
  }

  subscribed(frame) {
    this.update({ subscribed: true, error: null });
    if (this.snapshotComing || !frame.recovered) {
      this.snapshotComing = false; // the job_status follows this answer
      return;
    }
    // Nothing known of the job yet, and no snapshot on its way: ask for one.
    if (this.state.status === null) this.client.status(this.jobId).catch(() => {});
  }

  refused(err) {
    if (this.stopped) return;
    // Not connected (yet), or the connection closed: the client subscribes by itself once it
    // is open, from the last seq it delivered. Anything else is for the UI to show.
    if (!err.code && !this.client.isOpen()) return;
    this.update({ error: err });
  }

  stop() {
    this.stopped = true;
    for (const off of this.offs) off();
    this.offs = [];
    const { registry, jobId } = this;
    if (registry.watches.get(jobId) === this) registry.watches.delete(jobId);
    const leaving = this.client
      .unsubscribe(jobId)
      .catch(() => {}) // not connected: the server dropped the subscription with the socket
      .then(() => {
        if (registry.leaving.get(jobId) === leaving) registry.leaving.delete(jobId);
      });
    registry.leaving.set(jobId, leaving);
  }

  applyStatus(frame) {
    // A snapshot older than an event already shown (a late answer) must not move the job back.
    if (this.state.seq !== null && frame.last_seq < this.state.seq) return;
    this.update({
      status: frame.status,
      progress: frame.progress ?? (frame.status === "completed" ? 100 : this.state.progress),
      stage: frame.stage ?? this.state.stage,
      message: frame.message ?? this.state.message,
      seq: frame.last_seq,
      ...flags(frame.status),
    });
  }

  applyEvent(event) {
    // Behind a snapshot already shown (a replay from seq 0 still arriving): nothing new.
    if (this.state.seq !== null && event.seq < this.state.seq) return;
    const common = { seq: event.seq, lastEvent: event };
    switch (event.type) {
      case "progress_update":
        this.update({
          ...common,
          status: "running",
          progress: event.progress,
          stage: event.stage,
          message: event.message ?? "",
          estimatedSecondsRemaining: event.estimated_seconds_remaining ?? null,
        });
        break;
      case "stage_complete":
        this.update({ ...common, status: "running", stage: event.stage });
        break;
      case "job_complete":
        this.update({ ...common, status: "completed", progress: 100, results: event.results ?? null, estimatedSecondsRemaining: null, ...flags("completed") });
        break;
      case "job_failed":
        this.update({
          ...common,
          status: "failed",
          failure: event.error,
          message: event.error.message,
          stage: event.stage ?? this.state.stage,
          estimatedSecondsRemaining: null,
          ...flags("failed"),
        });
        break;
      case "job_cancelled":
        this.update({ ...common, status: "cancelled", message: event.reason ?? null, estimatedSecondsRemaining: null, ...flags("cancelled") });
        break;
      default:
        this.update(common);
    }
  }
}

function asError({ code, message }) {
  return Object.assign(new Error(message), { code });
}

/** Takes a share of the job's watch, starting it (and subscribing) if it is the first. */
export function acquire(client, jobId, lastSeq) {
  const registry = registryOf(client);
  let watch = registry.watches.get(jobId);
  if (!watch) {
    watch = new Watch(client, jobId, registry);
    registry.watches.set(jobId, watch);
    watch.start(lastSeq);
  }
  watch.refs += 1;
  clearTimeout(watch.stopTimer);
  watch.stopTimer = null;
  return watch;
}

/** Gives a share back; the last one out unsubscribes, a moment later (React's StrictMode
 *  unmounts and mounts again at once, as does a job id switched back and forth). */
export function release(watch) {
  watch.refs -= 1;
  if (watch.refs > 0) return;
  watch.stopTimer = setTimeout(() => {
    if (watch.refs === 0) watch.stop();
  }, 0);
}

/** The job's watch, when something shows it. */
export function peek(client, jobId) {
  return registryOf(client).watches.get(jobId);
}

