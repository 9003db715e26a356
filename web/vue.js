// jobcast for Vue 3: `useJob(client, jobId)` shows a job live in a component.
//
//   import { JobcastClient } from "./jobcast.js";
//   import { useJob } from "./vue.js";
//
//   const client = new JobcastClient("wss://…", { token: () => getAccessToken() });
//   client.connect(); // once, for the whole page
//
//   // in setup(), with `props.jobId` a prop (a ref, or a getter, or a plain string):
//   const job = useJob(client, () => props.jobId);
//   // template: <progress max="100" :value="job.progress ?? 0" /> {{ job.status }}
//
// It subscribes to the job at once (and again when jobId changes, unsubscribing from the one
// before), and unsubscribes when the component's (or effect scope's) life ends. Every useJob of
// the same job through the same client shares one subscription and one state, and the last one
// to go unsubscribes. It returns a read-only computed ref of a frozen state object, replaced on
// every change (see LiveJob in jobcast.d.ts). Vue 3.3 or later, imported as the bare specifier
// `vue` (a bundler or an import map resolves it).
import { computed, getCurrentScope, onScopeDispose, shallowRef, toRaw, toValue, watch } from "vue";
import { acquire, idleJob, release } from "./live-job.js";

/**
 * The job's live state, as a read-only ref: status, progress, stage, message, seq, last event,
 * results, failure, and the completed / failed / cancelled / finished flags. With no client or
 * no jobId (null), an idle state and no subscription.
 *
 * @param {import("vue").MaybeRefOrGetter<import("./jobcast.js").JobcastClient | null | undefined>} client
 * @param {import("vue").MaybeRefOrGetter<string | null | undefined>} jobId
 * @param {import("./jobcast.js").UseJobOptions} [options] read when a job is first followed
 * @returns {import("vue").ComputedRef<import("./jobcast.js").LiveJob>}
 */
export function useJob(client, jobId, options = {}) {
  const state = shallowRef(idleJob(toValue(jobId) ?? null));
  let leave = null;
  const follow = ([current, id]) => {
    leave?.();
    leave = null;
    // A client kept in a deep ref comes back as a reactive proxy: follow the client itself.
    const raw = current && toRaw(current);
    if (!raw || id == null) {
      state.value = idleJob(id ?? null);
      return;
    }
    const watched = acquire(raw, id, options.lastSeq ?? null);
    state.value = watched.state;
    const stopListening = watched.listen((next) => {
      state.value = next;
    });
    leave = () => {
      stopListening();
      release(watched);
    };
  };
  const stopWatching = watch([() => toValue(client), () => toValue(jobId)], follow, { immediate: true });
  if (getCurrentScope()) {
    onScopeDispose(() => {
      stopWatching();
      leave?.();
      leave = null;
    });
  }
  return computed(() => state.value);
}

export { idleJob };
