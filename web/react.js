// jobcast for React: `useJob(client, jobId)` shows a job live in a component.
//
//   import { JobcastClient } from "./jobcast.js";
//   import { useJob } from "./react.js";
//
//   const client = new JobcastClient("wss://…", { token: () => getAccessToken() });
//   client.connect(); // once, for the whole page
//
//   function Job({ id }) {
//     const job = useJob(client, id);
//     if (job.failed) return <p>Failed: {job.failure.message}</p>;
//     return <progress max="100" value={job.progress ?? 0} />;
//   }
//
// The component subscribes to the job when it mounts (or its jobId changes) and unsubscribes
// when it unmounts; every component showing the same job through the same client shares one
// subscription and one state, and the last one to go unsubscribes. The state is a frozen
// object, replaced on every change (see LiveJob in jobcast.d.ts). React 18 or later, imported
// as the bare specifier `react` (a bundler or an import map resolves it).
import { useCallback, useMemo, useSyncExternalStore } from "react";
import { acquire, idleJob, peek, release } from "./live-job.js";

/**
 * The job's live state: status, progress, stage, message, seq, last event, results, failure,
 * and the completed / failed / cancelled / finished flags. With no client or no jobId (null),
 * an idle state and no subscription.
 *
 * @param {import("./jobcast.js").JobcastClient | null | undefined} client
 * @param {string | null | undefined} jobId
 * @param {import("./jobcast.js").UseJobOptions} [options] read when the job is first followed
 * @returns {import("./jobcast.js").LiveJob}
 */
export function useJob(client, jobId, options = {}) {
  const id = jobId ?? null;
  const lastSeq = options.lastSeq ?? null;
  // `lastSeq` only says where the first subscribe starts: changing it later follows nothing new.
  const subscribe = useCallback(
    (onChange) => {
      if (!client || id === null) return () => {};
      const watch = acquire(client, id, lastSeq);
      const stopListening = watch.listen(onChange);
      return () => {
        stopListening();
        release(watch);
      };
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [client, id],
  );
  const idle = useMemo(() => idleJob(id), [id]);
  const snapshot = () => (client && id !== null && peek(client, id)?.state) || idle;
  return useSyncExternalStore(subscribe, snapshot, () => idle);
}

export { idleJob };
