// Uses of the React hook that must NOT compile: each marked line fails with the marked code.
import { JobcastClient } from "../../jobcast.js";
import { useJob } from "../../react.js";

const client = new JobcastClient("ws://127.0.0.1:3001");

export function Job() {
  useJob(client, 42); // error TS2345 (job ids are strings)
  useJob("ws://127.0.0.1:3001", "crawl-42"); // error TS2345 (a client, not a URL)
  const job = useJob(client, "crawl-42", { from: 0 }); // error TS2353 (the option is lastSeq)
  const percent = job.progress.toFixed(0); // error TS18047 (null until known)
  const state: "done" | "running" = job.status ?? "running"; // error TS2322 (it is "completed")
  return <p title={job.failure.message}>{percent}{state}</p>; // error TS18047 (null unless failed)
}
