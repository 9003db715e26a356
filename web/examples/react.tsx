// A React component showing a job live with `useJob`. Type-checked against react.d.ts by
// `npx tsc --noEmit -p web/tsconfig.json` (web/test/types.test.mjs).
import { useState } from "react";

import { JobcastClient } from "../jobcast.js";
import { type LiveJob, useJob } from "../react.js";

const client = new JobcastClient("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod", {
  token: () => localStorage.getItem("access_token"),
});
void client.connect(); // once, for the whole page

function eta(job: LiveJob): string {
  return job.estimatedSecondsRemaining === null ? "" : ` · about ${job.estimatedSecondsRemaining} s left`;
}

export function JobCard({ jobId }: { jobId: string }) {
  const job = useJob(client, jobId);
  if (job.error) return <p role="alert">Cannot follow {jobId}: {job.error.code ?? job.error.message}</p>;
  if (job.status === null) return <p aria-busy="true">Loading {jobId}…</p>;
  if (job.failed && job.failure) {
    return (
      <p role="alert">
        {jobId} failed: {job.failure.message}
        {job.failure.suggested_action ? ` (${job.failure.suggested_action})` : null}
      </p>
    );
  }
  return (
    <section data-status={job.status}>
      <progress max={100} value={job.progress ?? 0} />
      <span>
        {job.stage ?? "waiting"}: {job.message}
        {eta(job)}
      </span>
      {job.completed ? <a href={`/jobs/${jobId}/results`}>Results</a> : null}
      {!job.finished ? <button onClick={() => void client.cancel(jobId, "not needed")}>Cancel</button> : null}
    </section>
  );
}

/** A job picked from a list: switching unsubscribes from the one before. */
export function JobPicker({ jobIds }: { jobIds: readonly string[] }) {
  const [selected, select] = useState<string | null>(null);
  const job = useJob(client, selected, { lastSeq: 0 }); // the whole log: results even when finished
  return (
    <div>
      {jobIds.map((id) => (
        <button key={id} onClick={() => select(id)}>
          {id}
        </button>
      ))}
      <output>{selected === null ? "pick a job" : `${job.status ?? "…"} at seq ${job.seq ?? "?"}`}</output>
    </div>
  );
}
