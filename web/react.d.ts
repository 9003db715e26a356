// Type declarations for react.js: jobcast's React hook.
import type { JobcastClient, LiveJob, UseJobOptions } from "./jobcast.js";

export type { LiveJob, UseJobOptions } from "./jobcast.js";

/**
 * The job's live state, re-rendering the component on every change. Subscribes when the
 * component mounts or `jobId` changes; the last component showing the job through this client
 * unsubscribes when it unmounts. With no client or no jobId, an idle state and no subscription.
 */
export function useJob(
  client: JobcastClient | null | undefined,
  jobId: string | null | undefined,
  options?: UseJobOptions,
): LiveJob;

/** The state of a job nothing is known of yet (what `useJob` returns before anything is heard). */
export function idleJob(jobId?: string | null): LiveJob;
