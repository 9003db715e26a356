// react.js's and vue.js's `useJob` in a real browser (Debian's Chromium, driven by Playwright)
// against a real jobcast-local: a page renders job cards through the hook, a pipeline publishes
// through the sender, and the DOM must follow; unmounting a card (or switching its job) must
// unsubscribe, as the sender's own count of deliveries shows.
//
// No bundler: the page resolves the bare specifiers `react`, `react-dom/client` and `vue` with
// an import map. Vue ships an ES module for browsers (dist/vue.esm-browser.js). React 19 ships
// CommonJS only, so this server wraps react's, react-dom's and scheduler's development builds
// in a small CommonJS loader, served as one ES module, and serves thin ES modules re-exporting
// `react` and `react-dom/client` from it (their export names read from the packages in Node).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire, isBuiltin } from "node:module";
import { relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { JobcastClient } from "../jobcast.js";
import { startLocal, until } from "./local.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const web = fileURLToPath(new URL("../", import.meta.url));
const webRequire = createRequire(`${web}package.json`);

/**
 * The CommonJS packages `entries` need, as one ES module exporting `load(name)`: each file a
 * function of (module, exports, require, process), run once on its first `require`. Only the
 * development builds are included (process.env.NODE_ENV is "development").
 */
function commonJsBundle(entries) {
  const files = new Map();
  const visit = (file) => {
    if (files.has(file)) return;
    const source = readFileSync(file, "utf8");
    const deps = {};
    files.set(file, { source, deps });
    for (const [, request] of source.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)) {
      if (isBuiltin(request) || /\.(production|profiling)(\.min)?\.js$/.test(request)) continue;
      deps[request] = createRequire(file).resolve(request);
      visit(deps[request]);
    }
  };
  const roots = Object.fromEntries(entries.map((name) => [name, webRequire.resolve(name)]));
  Object.values(roots).forEach(visit);
  const id = (file) => relative(web, file);
  const definitions = [...files].map(
    ([file, { source, deps }]) =>
      `${JSON.stringify(id(file))}: [${JSON.stringify(Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, id(v)])))},\n` +
      `function (module, exports, require, process) {\n${source}\n}]`,
  );
  return `const files = {\n${definitions.join(",\n")}\n};
const roots = ${JSON.stringify(Object.fromEntries(Object.entries(roots).map(([k, v]) => [k, id(v)])))};
const process = { env: { NODE_ENV: "development" } };
const loaded = new Map();
function run(file) {
  if (loaded.has(file)) return loaded.get(file).exports;
  if (!files[file]) throw new Error("not bundled: " + file);
  const module = { exports: {} };
  loaded.set(file, module);
  const [deps, body] = files[file];
  body.call(module.exports, module, module.exports, (request) => run(deps[request]), process);
  return module.exports;
}
export function load(name) {
  return run(roots[name]);
}
`;
}

/** An ES module re-exporting a bundled CommonJS package under its own export names. */
function esmFacade(name) {
  const names = Object.keys(webRequire(name)).filter((key) => /^[A-Za-z_$][\w$]*$/.test(key) && key !== "default");
  return `import { load } from "/vendor/cjs.js";
const m = load(${JSON.stringify(name)});
export default m;
${names.map((key) => `export const ${key} = m.${key};`).join("\n")}
`;
}

const IMPORT_MAP = JSON.stringify({
  imports: {
    react: "/vendor/react.js",
    "react-dom/client": "/vendor/react-dom-client.js",
    vue: "/vendor/vue.js",
  },
});

/**
 * What both pages share: a client (its socket's frames logged, sent and received) and
 * `window.app`, whose `show(slots)` renders one card per `{slot, jobId}` (a slot keeps its
 * component while its jobId changes) and whose `unmountAll()` unmounts the whole app.
 */
const PAGE_SETUP = `
import { JobcastClient } from "/web/jobcast.js";
const sent = [];
const received = [];
class LoggedSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (m) => received.push(JSON.parse(m.data)));
  }
  send(text) {
    sent.push(JSON.parse(text));
    super.send(text);
  }
}
const params = new URLSearchParams(location.search);
const client = new JobcastClient(params.get("ws"), { WebSocket: LoggedSocket });
window.app = { sent, received, client };
const connected = client.connect();
`;

const REACT_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">${IMPORT_MAP}</script></head>
<body><div id="root"></div>
<script type="module">
${PAGE_SETUP}
import { createElement as h, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { useJob } from "/web/react.js";

function JobCard({ slot, jobId }) {
  const job = useJob(client, jobId);
  return h("div", {
      className: "job", "data-slot": slot, "data-job-id": job.jobId, "data-status": job.status ?? "unknown",
      "data-progress": job.progress ?? "", "data-seq": job.seq ?? "", "data-subscribed": String(job.subscribed),
      "data-finished": String(job.finished), "data-error": job.error?.code ?? "",
    },
    h("span", { className: "message" }, job.message ?? ""),
    h("span", { className: "results" }, job.results === undefined ? "" : JSON.stringify(job.results)),
    h("span", { className: "failure" }, job.failure?.message ?? ""),
  );
}

function App() {
  const [slots, setSlots] = useState([]);
  window.app.show = setSlots;
  return slots.map(({ slot, jobId }) => h(JobCard, { key: slot, slot, jobId }));
}

const root = createRoot(document.getElementById("root"));
root.render(h(StrictMode, null, h(App)));
window.app.unmountAll = () => root.unmount();
await connected;
document.body.dataset.ready = "true";
</script></body></html>`;

const VUE_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">${IMPORT_MAP}</script></head>
<body><div id="root"></div>
<script type="module">
${PAGE_SETUP}
import { computed, createApp, ref, toRef } from "vue";
import { useJob } from "/web/vue.js";

const JobCard = {
  props: { label: String, jobId: String },
  setup(props) {
    const job = useJob(client, toRef(props, "jobId")); // a ref: it follows the prop
    const results = computed(() => (job.value.results === undefined ? "" : JSON.stringify(job.value.results)));
    return { job, results };
  },
  template: \`<div class="job" :data-slot="label" :data-job-id="job.jobId" :data-status="job.status ?? 'unknown'"
      :data-progress="job.progress ?? ''" :data-seq="job.seq ?? ''" :data-subscribed="String(job.subscribed)"
      :data-finished="String(job.finished)" :data-error="job.error?.code ?? ''">
    <span class="message">{{ job.message ?? "" }}</span><span class="results">{{ results }}</span><span class="failure">{{ job.failure?.message ?? "" }}</span>
  </div>\`,
};

const slots = ref([]);
const app = createApp({
  components: { JobCard },
  setup: () => ({ slots }),
  template: \`<job-card v-for="s in slots" :key="s.slot" :label="s.slot" :job-id="s.jobId" />\`,
});
app.config.warnHandler = (message) => console.warn("[Vue warn]", message);
app.mount("#root");
window.app.show = (next) => { slots.value = next; };
window.app.unmountAll = () => app.unmount();
await connected;
document.body.dataset.ready = "true";
</script></body></html>`;

/** Serves the two pages, the modules of web/, and the frameworks' browser builds. */
async function startPageServer() {
  const javascript = "text/javascript; charset=utf-8";
  const routes = new Map([
    ["/react.html", ["text/html; charset=utf-8", REACT_PAGE]],
    ["/vue.html", ["text/html; charset=utf-8", VUE_PAGE]],
    ["/web/jobcast.js", [javascript, readFileSync(`${web}jobcast.js`)]],
    ["/web/react.js", [javascript, readFileSync(`${web}react.js`)]],
    ["/web/vue.js", [javascript, readFileSync(`${web}vue.js`)]],
    ["/web/live-job.js", [javascript, readFileSync(`${web}live-job.js`)]],
    ["/vendor/vue.js", [javascript, readFileSync(webRequire.resolve("vue/dist/vue.esm-browser.js"))]],
    ["/vendor/cjs.js", [javascript, commonJsBundle(["react", "react-dom/client"])]],
    ["/vendor/react.js", [javascript, esmFacade("react")]],
    ["/vendor/react-dom-client.js", [javascript, esmFacade("react-dom/client")]],
  ]);
  const server = createServer((request, response) => {
    const route = routes.get(new URL(request.url, "http://x").pathname);
    response.writeHead(route ? 200 : 404, { "content-type": route ? route[0] : "text/plain" });
    response.end(route ? route[1] : "not found");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

let browser;
let pages;
let local;
before(async () => {
  // The bindings, not the stores, are under test: the embedded store alone. (On DynamoDB the
  // sender's subscriber index may lag an unsubscribe for a moment, blurring the counts below.)
  [browser, pages, local] = await Promise.all([
    chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    }),
    startPageServer(),
    startLocal("memory"),
  ]);
});
after(async () => {
  await browser?.close();
  await pages?.close();
  await local?.stop();
});

for (const framework of ["react", "vue"]) {
  describe(`useJob in ${framework}`, () => {
    let page;
    let user;
    const problems = [];
    let jobs = 0;

    /** A job registered for this page's user. */
    async function newJob() {
      const jobId = `${framework}-${user}-${++jobs}`;
      const answer = await local.invoke({ action: "register_job", job_id: jobId, user_id: user });
      assert.equal(answer.outcome, "registered", JSON.stringify(answer));
      return jobId;
    }

    async function publish(jobId, event) {
      const answer = await local.invoke({ job_id: jobId, event });
      assert.equal(answer.outcome, "published", JSON.stringify(answer));
      return answer;
    }

    const show = (slots) => page.evaluate((s) => window.app.show(s), slots);
    const card = (slot) => `.job[data-slot="${slot}"]`;
    const waitFor = (selector) => page.waitForSelector(selector, { state: "attached", timeout: 10_000 });
    const frames = (where, predicate) => page.evaluate(([w, p]) => window.app[w].filter(new Function("f", `return ${p}`)), [where, predicate]);
    const unsubscribedFrom = (jobId) =>
      page.waitForFunction((id) => window.app.received.some((f) => f.type === "unsubscribed" && f.job_id === id), jobId, { timeout: 10_000 });

    before(async () => {
      user = `${framework}-user`;
      page = await browser.newPage();
      page.on("pageerror", (err) => problems.push(`page error: ${err}`));
      page.on("console", (message) => {
        if (message.type() === "error" || message.type() === "warning") problems.push(`${message.type()}: ${message.text()}`);
      });
      const ws = `${local.wsUrl}/?user_id=${user}`;
      await page.goto(`${pages.url}/${framework}.html?ws=${encodeURIComponent(ws)}`);
      await page.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 10_000 });
    });
    after(async () => {
      await page?.close();
      assert.deepEqual(problems, [], "no script errors or framework warnings on the page");
    });

    test("a card shows its job's snapshot, progress, completion and failure", async () => {
      const [done, broken] = [await newJob(), await newJob()];
      await publish(done, { type: "progress_update", stage: "crawl", progress: 10, message: "1 of 10 pages" });
      await show([
        { slot: "a", jobId: done },
        { slot: "b", jobId: broken },
      ]);
      // The snapshot first: the job as it stood when the card subscribed.
      await waitFor(`${card("a")}[data-status=running][data-progress="10"][data-seq="1"][data-subscribed=true]`);
      await waitFor(`${card("b")}[data-status=pending][data-seq="0"][data-subscribed=true]`);
      assert.equal(await page.textContent(`${card("a")} .message`), "1 of 10 pages");

      const answer = await publish(done, { type: "progress_update", stage: "crawl", progress: 40, message: "4 of 10 pages" });
      assert.equal(answer.delivered, 1, "one subscription, shared by nothing else");
      await waitFor(`${card("a")}[data-progress="40"][data-seq="2"]`);
      assert.equal(await page.textContent(`${card("a")} .message`), "4 of 10 pages");
      await publish(done, { type: "stage_complete", stage: "crawl", results: { pages: 10 } });
      await publish(done, { type: "job_complete", results: { pages: 10 } });
      await waitFor(`${card("a")}[data-status=completed][data-progress="100"][data-seq="4"][data-finished=true]`);
      assert.equal(await page.textContent(`${card("a")} .results`), '{"pages":10}');

      await publish(broken, { type: "job_failed", stage: "parse", error: { code: "bad_html", message: "page 3 is not HTML" } });
      await waitFor(`${card("b")}[data-status=failed][data-finished=true]`);
      assert.equal(await page.textContent(`${card("b")} .failure`), "page 3 is not HTML");

      // A job that is not the user's: the card says why it shows nothing.
      await show([{ slot: "x", jobId: "somebody-elses" }]);
      await waitFor(`${card("x")}[data-error=forbidden][data-status=unknown][data-subscribed=false]`);

      // One subscribe per job, StrictMode's double mount included.
      for (const jobId of [done, broken]) {
        assert.equal((await frames("sent", `f.action === "subscribe" && f.job_id === ${JSON.stringify(jobId)}`)).length, 1);
      }
      await show([]);
    });

    test("unmounting or switching a card unsubscribes; a job shown twice stays followed until both go", async () => {
      const [first, second] = [await newJob(), await newJob()];
      await show([
        { slot: "c", jobId: first },
        { slot: "d", jobId: first },
      ]);
      await waitFor(`${card("c")}[data-subscribed=true]`);
      await waitFor(`${card("d")}[data-subscribed=true]`);
      assert.equal((await frames("sent", `f.action === "subscribe" && f.job_id === ${JSON.stringify(first)}`)).length, 1, "one subscription for both cards");

      // One of the two cards goes: the other still shows the job.
      await show([{ slot: "c", jobId: first }]);
      assert.equal((await publish(first, { type: "progress_update", stage: "s", progress: 20 })).delivered, 1);
      await waitFor(`${card("c")}[data-progress="20"]`);

      // The last card showing it switches to another job: the first is unsubscribed on the server.
      await show([{ slot: "c", jobId: second }]);
      await unsubscribedFrom(first);
      await waitFor(`${card("c")}[data-job-id="${second}"][data-status=pending][data-subscribed=true]`);
      assert.equal((await publish(first, { type: "progress_update", stage: "s", progress: 30 })).delivered, 0, "nobody follows the first job");
      assert.equal((await publish(second, { type: "progress_update", stage: "s", progress: 50 })).delivered, 1);
      await waitFor(`${card("c")}[data-progress="50"]`);

      // The card unmounts: the second job is unsubscribed too, while the socket stays open.
      await show([]);
      await unsubscribedFrom(second);
      assert.equal((await publish(second, { type: "progress_update", stage: "s", progress: 60 })).delivered, 0);
      // Not because the socket went: it is open, and answers.
      const status = await page.evaluate((id) => window.app.client.status(id), second);
      assert.equal(status.last_seq, 2);
      assert.deepEqual(await frames("received", `f.seq > 1 && f.job_id === ${JSON.stringify(first)}`), [], "no event after the unsubscribe");

      // Unmounting the whole app lets go of what it showed.
      const last = await newJob();
      await show([{ slot: "e", jobId: last }]);
      await waitFor(`${card("e")}[data-subscribed=true]`);
      await page.evaluate(() => window.app.unmountAll());
      await unsubscribedFrom(last);
      assert.equal((await publish(last, { type: "job_complete" })).delivered, 0);
    });
  });
}

test("vue.js in Node: a job shown before the client connects, a whole log from seq 0, a refused job", async (t) => {
  // Vue's reactivity needs no DOM: the composable runs in an effect scope, on Node's WebSocket.
  const { effectScope } = await import("vue");
  const { useJob } = await import("../vue.js");
  const user = "node-vue";
  const [live, finished] = ["node-vue-live", "node-vue-finished"];
  for (const jobId of [live, finished]) await local.invoke({ action: "register_job", job_id: jobId, user_id: user });
  await local.invoke({ job_id: finished, event: { type: "progress_update", stage: "s", progress: 50 } });
  await local.invoke({ job_id: finished, event: { type: "job_complete", results: { rows: 7 } } });

  const received = [];
  class Logged extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (m) => received.push(JSON.parse(m.data)));
    }
  }
  const client = new JobcastClient(`${local.wsUrl}/?user_id=${user}`, { WebSocket: Logged });
  t.after(() => client.close());
  const scope = effectScope();
  const [a, b, c] = scope.run(() => [useJob(client, live), useJob(client, finished, { lastSeq: 0 }), useJob(client, "not-yours")]);
  assert.equal(a.value.status, null, "nothing known before the connection");
  await client.connect();

  await until("the live job's snapshot", () => a.value.subscribed && a.value.status === "pending");
  await until("the finished job's whole log", () => b.value.completed && b.value.lastEvent?.type === "job_complete");
  assert.deepEqual(b.value.results, { rows: 7 });
  assert.equal(b.value.seq, 2);
  await until("the refusal", () => c.value.error);
  assert.equal(c.value.error.code, "forbidden");
  assert.equal(c.value.status, null);

  await local.invoke({ job_id: live, event: { type: "progress_update", stage: "s", progress: 40, message: "m", estimated_seconds_remaining: 9 } });
  await until("the progress", () => a.value.progress === 40);
  assert.equal(a.value.estimatedSecondsRemaining, 9);
  assert.ok(Object.isFrozen(a.value), "a state is never changed in place");

  scope.stop();
  await until("both jobs left", () => [live, finished].every((id) => received.some((f) => f.type === "unsubscribed" && f.job_id === id)));
  const after = await local.invoke({ job_id: live, event: { type: "job_complete" } });
  assert.equal(after.delivered, 0);
  assert.equal(a.value.progress, 40, "a stopped scope's state stays as it was");
});
