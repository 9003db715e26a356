// A Vue 3 component showing a job live with `useJob`. Type-checked against vue.d.ts by
// `npx tsc --noEmit -p web/tsconfig.json` (web/test/types.test.mjs).
import { computed, defineComponent, h, ref, shallowRef } from "vue";

import { JobcastClient } from "../jobcast.js";
import { useJob } from "../vue.js";

// A shallowRef (or no ref at all): a deep ref would wrap the client in a reactive proxy.
const client = shallowRef(new JobcastClient("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod"));
void client.value.connect();

export const JobCard = defineComponent({
  props: { jobId: { type: String, required: true } },
  setup(props) {
    // A getter: when the prop changes, the old job is unsubscribed and the new one followed.
    const job = useJob(client, () => props.jobId);
    const label = computed(() => {
      const { status, progress, stage, message } = job.value;
      if (job.value.failed) return `failed: ${job.value.failure?.message ?? message ?? ""}`;
      return `${status ?? "…"} ${progress ?? 0} % ${stage ?? ""} ${message ?? ""}`;
    });
    return () =>
      h("section", { "data-status": job.value.status ?? "unknown" }, [
        h("progress", { max: 100, value: job.value.progress ?? 0 }),
        h("span", label.value),
        job.value.finished ? null : h("button", { onClick: () => client.value.cancel(props.jobId) }, "Cancel"),
      ]);
  },
});

/** A job id in a ref: null follows nothing. */
export function useSelectedJob() {
  const selected = ref<string | null>(null);
  const job = useJob(client, selected, { lastSeq: 0 });
  const results = computed(() => (job.value.completed ? job.value.results : undefined));
  return { selected, job, results };
}
