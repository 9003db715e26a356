// Type declarations for jobcast.js, the jobcast client (browsers and Node 20+).
//
// The server frames below follow schemas/server-message.json (generated from the Rust types that
// write them) and docs/protocol.md; web/test/types.test.mjs checks them against the schema, and
// this file's exports against jobcast.js's, so a drift fails the tests. Only the client's public
// API is declared: its other members are internal and may change.

// ---------------------------------------------------------------------------------------------
// Values that frames carry

/** Any JSON value: what a pipeline put in `results`. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Where a job stands. `completed`, `failed` and `cancelled` are final. */
export type JobStatus = "pending" | "running" | "completed" | "failed" | "cancelled";

/** The machine-readable `code` of an `error` reply. */
export type ErrorCode =
  | "invalid_json"
  | "invalid_message"
  | "unknown_action"
  | "payload_too_large"
  | "forbidden"
  | "job_finished"
  | "rate_limited"
  | "too_many_subscriptions"
  | "too_many_connections"
  | "replay_in_progress"
  | "unavailable"
  | "internal_error";

/** Why a job failed, in words a user can act on (`job_failed`'s `error`). */
export interface FailureDetail {
  /** A machine-readable code, the pipeline's own. */
  code: string;
  /** What went wrong, for the user. */
  message: string;
  /** What the user can do about it, when there is something. */
  suggested_action?: string | null;
}

export type NotificationLevel = "info" | "success" | "warning" | "error";
export type AlertSeverity = "low" | "medium" | "high" | "critical";
/** A project's status, as the notification hub writes it. */
export type ProjectStatus = "INITIALIZING" | "CRAWLING" | "PROCESSING" | "DONE" | "FAILED";

/** The project a hub envelope (`project_progress`, `project_completed`) reports on. */
export interface ProjectPayload {
  project_id: string;
  status: ProjectStatus;
  total: number;
  done: number;
  errors: number;
  /** 0–100. */
  progress_percent: number;
}

// ---------------------------------------------------------------------------------------------
// Server frames: a union discriminated on `type`

/** What every server frame carries. */
export interface FrameBase {
  /** When the frame was made: RFC 3339, UTC, milliseconds. */
  timestamp: string;
  /** The correlation id of the request this frame answers (or the pipeline's), if any. */
  correlation_id?: string | null;
}

/** What every job event carries. */
export interface JobEventBase extends FrameBase {
  job_id: string;
  /** 1, 2, 3… per job; the client delivers each once and in order. */
  seq: number;
}

export interface ProgressUpdateFrame extends JobEventBase {
  type: "progress_update";
  /** The stage reporting. */
  stage: string;
  /** 0–100. */
  progress: number;
  /** A line for the user; empty when the pipeline gave none. */
  message?: string;
  estimated_seconds_remaining?: number | null;
}

export interface StageCompleteFrame extends JobEventBase {
  type: "stage_complete";
  /** The stage that finished. */
  stage: string;
  /** What the stage produced; null when absent. */
  results?: Json;
}

export interface JobCompleteFrame extends JobEventBase {
  type: "job_complete";
  /** What the job produced; null when absent. */
  results?: Json;
}

export interface JobFailedFrame extends JobEventBase {
  type: "job_failed";
  error: FailureDetail;
  /** The stage that failed, when the pipeline names it. */
  stage?: string | null;
}

export interface JobCancelledFrame extends JobEventBase {
  type: "job_cancelled";
  /** Why, when the canceller said. */
  reason?: string | null;
}

/** A job event, as the `event` listener receives it. */
export type JobEventFrame =
  | ProgressUpdateFrame
  | StageCompleteFrame
  | JobCompleteFrame
  | JobFailedFrame
  | JobCancelledFrame;

/** A job's latest snapshot: after a first `subscribe`, and the answer to `status` and `cancel`. */
export interface JobStatusFrame extends FrameBase {
  type: "job_status";
  job_id: string;
  status: JobStatus;
  /** The seq of the job's latest event (0: none yet). */
  last_seq: number;
  cancel_requested: boolean;
  /** When the job last changed: RFC 3339. */
  updated_at: string;
  /** The progress last reported (100 once completed), if any. */
  progress?: number | null;
  /** The stage an event last named, if any. */
  stage?: string | null;
  /** The latest message: a progress update's, a failure's, or a cancel's reason. */
  message?: string | null;
}

/** The answer to `subscribe`: every event with `seq > after_seq` follows, once, in order. */
export interface SubscribedFrame extends FrameBase {
  type: "subscribed";
  job_id: string;
  after_seq: number;
  /** False when the events after the asked `last_seq` are gone: a `job_status` follows. */
  recovered: boolean;
}

/** A replay stopped at its 500 events; the client subscribes again by itself. */
export interface ReplayPausedFrame extends FrameBase {
  type: "replay_paused";
  job_id: string;
  through_seq: number;
  last_seq: number;
  retry_after_ms: number;
}

export interface UnsubscribedFrame extends FrameBase {
  type: "unsubscribed";
  job_id: string;
}

export interface PongFrame extends FrameBase {
  type: "pong";
}

/** A request the server could not serve. */
export interface ErrorFrame extends FrameBase {
  type: "error";
  code: ErrorCode;
  message: string;
  /** The client action that failed, when it was recognised. */
  action?: string | null;
  suggested_action?: string | null;
}

/** What every user-level message carries. */
export interface UserMessageBase extends FrameBase {
  /** The message's id: a redelivery carries the same one, and the client shows it once. */
  message_id?: string | null;
}

/** A notification's fields, flat in jobcast's own form or inside the hub's `payload`. */
export interface NotificationBody {
  title: string;
  message: string;
  level: NotificationLevel;
}

/** An alert's fields, flat or inside the hub's `payload`. */
export interface AlertBody {
  title: string;
  message: string;
  severity: AlertSeverity;
}

/**
 * A notification, in the form its publisher used: flat (`{type, title, message, level}`) or
 * the notification hub's envelope (`{type, payload: {title, message, level}, timestamp}`).
 */
export type NotificationFrame =
  | (UserMessageBase & NotificationBody & { type: "notification" })
  | (UserMessageBase & { type: "notification"; payload: NotificationBody });

/** An alert, flat or in the hub's envelope, as it was published. */
export type AlertFrame =
  | (UserMessageBase & AlertBody & { type: "alert" })
  | (UserMessageBase & { type: "alert"; payload: AlertBody });

/** The notification hub's envelope; `timestamp` is its publisher's time. */
export interface ProjectProgressFrame extends UserMessageBase {
  type: "project_progress";
  payload: ProjectPayload;
}

export interface ProjectCompletedFrame extends UserMessageBase {
  type: "project_completed";
  payload: ProjectPayload;
}

/** The hub's free-form `update`: any JSON object, forwarded as it was published. */
export interface UpdateFrame extends UserMessageBase {
  type: "update";
  payload: { [key: string]: Json };
}

/** A user-level message, as the `notification` listener receives it. */
export type UserMessageFrame =
  | NotificationFrame
  | AlertFrame
  | ProjectProgressFrame
  | ProjectCompletedFrame
  | UpdateFrame;

/** Every frame the server sends, discriminated on `type`. */
export type ServerFrame =
  | JobEventFrame
  | JobStatusFrame
  | SubscribedFrame
  | ReplayPausedFrame
  | UnsubscribedFrame
  | PongFrame
  | ErrorFrame
  | UserMessageFrame;

/** The `type`s of server frames. */
export type ServerFrameType = ServerFrame["type"];

// ---------------------------------------------------------------------------------------------
// The client

/** A failure the client reports itself (an `error` listener's payload without a `type`). */
export type ClientError =
  | {
      type?: undefined;
      /** The token function threw, or a WebSocket could not be made; a reconnect follows. */
      code: "token_unavailable" | "connect_failed";
      message: string;
      job_id?: undefined;
    }
  | {
      type?: undefined;
      /** A request the client made by itself for a job (a resubscribe, a quiet-spell status)
       *  failed: the server's code, or `request_failed` (no reply, connection lost). */
      code: ErrorCode | "request_failed";
      message: string;
      job_id: string;
    };

/** The connection's state, as the `connection` listener receives it. */
export type ConnectionChange =
  | { state: "connecting" | "open" | "closed"; attempt: number }
  | {
      state: "reconnecting";
      /** How many reconnects in a row, this one included. */
      attempt: number;
      /** How long until it tries, drawn at random below the backoff ceiling. */
      delayMs: number;
    };

export type ConnectionState = ConnectionChange["state"];

/** What each `on(kind, …)` listener receives. */
export interface JobcastEventMap {
  progress: ProgressUpdateFrame;
  stage: StageCompleteFrame;
  complete: JobCompleteFrame;
  failed: JobFailedFrame;
  cancelled: JobCancelledFrame;
  /** Every job event, whatever its type, after its own kind's listeners. */
  event: JobEventFrame;
  /** `job_status` snapshots: after a first subscribe, and the answers to `status`/`cancel`. */
  status: JobStatusFrame;
  /** User-level messages, each once (by `message_id`). */
  notification: UserMessageFrame;
  subscribed: SubscribedFrame;
  /** Every `error` frame from the server, and the client's own failures. */
  error: ErrorFrame | ClientError;
  connection: ConnectionChange;
}

/** The `on(...)` kinds a listener may ask for. */
export type Kind = keyof JobcastEventMap;

/** The `on(...)` kinds a listener may ask for, in jobcast.js's order. */
export const KINDS: readonly [
  "progress",
  "stage",
  "complete",
  "failed",
  "cancelled",
  "event",
  "status",
  "notification",
  "subscribed",
  "error",
  "connection",
];

/** The socket the client drives: any WHATWG-style WebSocket (the browser's, Node 22's, `ws`'s). */
export interface JobcastSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((...args: any[]) => unknown) | null;
  /** Called with an event whose `data` is the frame's text. */
  onmessage: ((...args: any[]) => unknown) | null;
  onclose: ((...args: any[]) => unknown) | null;
  onerror: ((...args: any[]) => unknown) | null;
}

export type JobcastSocketClass = new (url: string, protocols?: string[]) => JobcastSocket;

/**
 * The client's options. Leave a number out rather than passing `undefined`: the options are
 * spread over the defaults, so an `undefined` replaces the default (`exactOptionalPropertyTypes`
 * catches that).
 */
export interface JobcastClientOptions {
  /**
   * A JWT, or a function that returns a fresh one for every (re)connect (a falsy one connects
   * without). Sent as the `bearer.<jwt>` subprotocol beside `jobcast`, never in the URL.
   */
  token?: string | (() => string | null | undefined | Promise<string | null | undefined>) | undefined;
  /** The WebSocket class (default: the global one). */
  WebSocket?: JobcastSocketClass | undefined;
  /** Keepalive period (default 5 minutes; API Gateway closes connections idle for 10). */
  pingIntervalMs?: number;
  /** A ping unanswered this long means a dead socket: it is closed and reconnected (10 s). */
  pongTimeoutMs?: number;
  /** The first reconnect delay's ceiling (500 ms), doubling per attempt. */
  initialBackoffMs?: number;
  /** The reconnect delay's ceiling (30 s). */
  maxBackoffMs?: number;
  /** How long a request waits for its reply (10 s). */
  requestTimeoutMs?: number;
  /**
   * A running job heard nothing of for this long is asked for its status, and resumed from the
   * last seq delivered if it has moved on (60 s; 0 turns the check off).
   */
  quietCheckMs?: number;
  /** Jitter source in [0, 1) (default Math.random). */
  random?: () => number;
}

export interface SubscribeOptions {
  /**
   * Where to start on a first subscribe: events after this seq follow (0: the job's whole log).
   * Absent or null: a `status` snapshot first, then the events after it. Ignored for a job this
   * client already follows: it resumes from the last seq it delivered.
   */
  lastSeq?: number | null | undefined;
}

/** An `error` reply from the server, as a rejected request's reason. */
export class JobcastError extends Error {
  constructor(reply: { code: ErrorCode; message?: string; action?: string | null; suggested_action?: string | null });
  readonly name: "JobcastError";
  readonly code: ErrorCode;
  /** The client action that failed, when the server recognised it. */
  readonly action: string | null | undefined;
  readonly suggestedAction: string | null | undefined;
}

/**
 * One WebSocket to jobcast, reconnecting with backoff, resubscribing from the last seq
 * delivered: every job event reaches the listeners once and in `seq` order.
 */
export class JobcastClient {
  /**
   * @param url the WebSocket URL (wss://… for API Gateway, ws://localhost:… for jobcast-local)
   * @throws Error when there is no WebSocket class (Node 20 without `--experimental-websocket`)
   */
  constructor(url: string, options?: JobcastClientOptions);

  readonly url: string;
  /** The options in force, defaults filled in. */
  readonly options: Readonly<Required<Omit<JobcastClientOptions, "token" | "WebSocket">>> &
    Readonly<Pick<JobcastClientOptions, "token" | "WebSocket">>;

  /** Listens to `kind`; returns a function that stops listening. Throws on an unknown kind. */
  on<K extends Kind>(kind: K, listener: (payload: JobcastEventMap[K]) => void): () => void;

  /** Opens the connection; resolves once it is open. Reconnects by itself from then on. */
  connect(): Promise<void>;

  /** Closes for good: no reconnect, pending requests rejected. */
  close(): void;

  /** Whether the socket is open now (requests made while it is not are rejected); null before
   *  any socket exists, or between a close and the next one. */
  isOpen(): boolean | null;

  /** The last seq delivered for a job (null before any, or for a job not followed). */
  lastSeq(jobId: string): number | null;

  /**
   * Follows a job; resolves with the `subscribed` reply, rejects with a `JobcastError`
   * (`forbidden`: not the caller's job, or no such job). The client follows it from then on
   * across reconnects; rejected with "not connected" before `connect()` resolves, the job is
   * still subscribed once the connection opens.
   */
  subscribe(jobId: string, options?: SubscribeOptions): Promise<SubscribedFrame>;

  /** Stops following a job; resolves with the `unsubscribed` reply. */
  unsubscribe(jobId: string): Promise<UnsubscribedFrame>;

  /** Cancels a job (its owner only); resolves with its new status (`cancelled`). */
  cancel(jobId: string, reason?: string): Promise<JobStatusFrame>;

  /** The job's latest snapshot. */
  status(jobId: string): Promise<JobStatusFrame>;
}

// ---------------------------------------------------------------------------------------------
// The state the framework bindings (react.js's and vue.js's `useJob`) keep for a job

/** A job as a UI shows it, kept up to date from its snapshots and events. */
export interface LiveJob {
  /** The job (null: none asked for). */
  jobId: string | null;
  /** Where the job stands; null until the first snapshot or event. */
  status: JobStatus | null;
  /** 0–100; null until known. 100 once completed. */
  progress: number | null;
  /** The stage last named. */
  stage: string | null;
  /** The latest message: a progress update's, a failure's, a cancel's reason. */
  message: string | null;
  /** The latest progress update's estimate of the seconds left (null without one, or once finished). */
  estimatedSecondsRemaining: number | null;
  /** The seq of the latest event applied (0: the job has had none; null: nothing heard yet). */
  seq: number | null;
  /** The latest job event delivered (null until one is, e.g. when only a snapshot was seen). */
  lastEvent: JobEventFrame | null;
  /** `job_complete`'s results (undefined unless that event was delivered). */
  results: Json | undefined;
  /** Why the job failed (`job_failed`'s `error`), when that event was delivered. */
  failure: FailureDetail | null;
  /** Whether the server has confirmed the subscription on the current connection. */
  subscribed: boolean;
  /**
   * Why the job cannot be followed: the subscribe was refused (a `JobcastError`, `forbidden`
   * for a job that is not the user's) or got no answer (`request_failed`). Cleared by the next
   * `subscribed`. Not a job failure: that is `failure`.
   */
  error: (Error & { code?: ErrorCode | "request_failed" }) | null;
  completed: boolean;
  failed: boolean;
  cancelled: boolean;
  /** completed, failed or cancelled: no event follows. */
  finished: boolean;
}

/** Options of `useJob`, React's and Vue's. */
export interface UseJobOptions {
  /**
   * Where the first subscribe starts (see `SubscribeOptions.lastSeq`): 0 replays the job's
   * whole log, so `results` and `lastEvent` are known even for a job that finished before.
   * Applies when the job is not followed yet through this client.
   */
  lastSeq?: number | null | undefined;
}
