// Type declarations for vue.js: jobcast's Vue 3 composable.
import type { ComputedRef, MaybeRefOrGetter } from "vue";
import type { JobcastClient, LiveJob, UseJobOptions } from "./jobcast.js";

export type { LiveJob, UseJobOptions } from "./jobcast.js";

/**
 * The job's live state as a read-only ref. Subscribes at once and again whenever `jobId`
 * (a value, a ref or a getter) changes; unsubscribes when the calling component or effect
 * scope ends (the last user of the job through this client does). With no client or no jobId,
 * an idle state and no subscription.
 */
export function useJob(
  client: MaybeRefOrGetter<JobcastClient | null | undefined>,
  jobId: MaybeRefOrGetter<string | null | undefined>,
  options?: UseJobOptions,
): ComputedRef<LiveJob>;

/** The state of a job nothing is known of yet (what `useJob` holds before anything is heard). */
export function idleJob(jobId?: string | null): LiveJob;
