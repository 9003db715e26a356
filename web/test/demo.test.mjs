// The live demo page in a real browser (Debian's Chromium, driven by Playwright): start a
// job and watch it reach 100 % through a server-side drop of the socket, cancel another,
// watch a third fail. Every event must be shown once, in order. On both stores.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { STORES, startLocal, until } from "./local.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/** The events the page showed for a job, as [seq, type]. */
async function shown(page, jobId) {
  return page.evaluate((id) => window.demo.log.filter((e) => e.job_id === id).map((e) => [e.seq, e.type]), jobId);
}

function assertGapless(events, jobId) {
  const seqs = events.map(([seq]) => seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `${jobId}: every seq once, in order`);
}

async function startJob(page, button) {
  const before = await page.locator(".job").count();
  await page.click(button);
  await page.waitForFunction((n) => document.querySelectorAll(".job").length > n, before);
  return page.locator(".job").first().getAttribute("data-job-id");
}

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
});
after(async () => {
  await browser?.close();
});

for (const store of STORES) {
  describe(`the demo page (${store} store)`, () => {
    let local;
    let page;
    const errors = [];
    before(async () => {
      // The demo pipelines' own log lines too: the cancel test hears the pipeline stop.
      local = await startLocal(store, { watchDemo: true });
      page = await browser.newPage();
      page.on("pageerror", (err) => errors.push(String(err)));
      await page.goto(`${local.httpUrl}/?steps=30&interval_ms=60`);
      await page.waitForSelector("body[data-ready=true]");
      await page.waitForSelector("#connection[data-state=open]");
    });
    after(async () => {
      await page?.close();
      await local?.stop();
      assert.deepEqual(errors, [], "no script errors on the page");
    });

    test("a job reaches 100 % through a dropped connection, every event once", async () => {
      const jobId = await startJob(page, "#start");
      const card = page.locator(`.job[data-job-id="${jobId}"]`);
      await page.waitForFunction((id) => Number(document.querySelector(`.job[data-job-id="${id}"]`)?.dataset.progress) >= 20, jobId);

      // The server drops the socket mid-job, as API Gateway may; the page comes back by itself.
      // The page's own record of its connection states shows it (polling the indicator could
      // miss a reconnect quicker than the poll).
      const before = await page.evaluate(() => window.demo.states.length);
      assert.equal(await local.dropAllConnections(), 1);
      await page.waitForFunction(
        (from) => {
          const since = window.demo.states.slice(from);
          const lost = since.indexOf("reconnecting");
          return lost !== -1 && since.indexOf("open", lost) !== -1;
        },
        before,
        { timeout: 15_000 },
      );
      await page.waitForSelector("#connection[data-state=open]");

      await page.waitForSelector(`#finished li[data-job-id="${jobId}"][data-status=completed]`, { timeout: 20_000 });
      assert.equal(await card.getAttribute("data-status"), "completed");
      assert.equal(await card.locator(".percent").textContent(), "100 %");
      assert.equal(await card.locator(".bar").evaluate((bar) => bar.style.width), "100%");
      const events = await shown(page, jobId);
      assertGapless(events, jobId);
      const types = events.map(([, type]) => type);
      assert.equal(types.filter((t) => t === "progress_update").length, 30);
      assert.equal(types.filter((t) => t === "stage_complete").length, 3);
      assert.equal(types.at(-1), "job_complete");
      assert.equal(types.length, 34);
    });

    test("cancel stops the pipeline and lands in the finished list", async () => {
      // A step every 50 ms: the pipeline sleeps, polls is_cancelled, then reports the step.
      await page.goto(`${local.httpUrl}/?steps=200&interval_ms=50`);
      await page.waitForSelector("#connection[data-state=open]");
      const jobId = await startJob(page, "#start");
      const card = page.locator(`.job[data-job-id="${jobId}"]`);
      await page.waitForFunction((id) => Number(document.querySelector(`.job[data-job-id="${id}"]`)?.dataset.progress) > 0, jobId);
      await card.locator("button.cancel").click();
      await page.waitForSelector(`#finished li[data-job-id="${jobId}"][data-status=cancelled]`);
      assert.equal(await card.getAttribute("data-status"), "cancelled");

      // Where the job stood when the cancel landed, on the page and in the store.
      const atCancel = await shown(page, jobId);
      assertGapless(atCancel, jobId);
      assert.equal(atCancel.at(-1)[1], "job_cancelled");
      assert.ok(atCancel.some(([, type]) => type === "progress_update"), "the pipeline was running");
      const recorded = await local.invoke({ action: "get_job", job_id: jobId });
      assert.equal(recorded.status, "cancelled");
      assert.equal(recorded.last_seq, atCancel.length, "the page saw the job's every event");
      const poll = await local.invoke({ action: "is_cancelled", job_id: jobId });
      assert.equal(poll.cancelled, true);
      // The sender refuses events for a finished job, so the page alone cannot tell a stopped
      // pipeline from one still sending: the pipeline says when it stops (jobcast-local's demo
      // logs it, as JSON here).
      await until("the job's pipeline stopped", () =>
        local.logs.some((line) => line.job_id === jobId && /pipeline stops/.test(line.message ?? "")));

      // A clock that runs at the pipeline's own pace: a second job with the same step interval,
      // started after the cancel. Once it has made 8 steps, the cancelled job's pipeline has had
      // 8 step intervals (its poll comes at most one step after the cancel) to send something.
      const clockId = await startJob(page, "#start");
      assert.notEqual(clockId, jobId);
      await page.waitForFunction(
        (id) => window.demo.log.filter((e) => e.job_id === id && e.type === "progress_update").length >= 8,
        clockId,
        { timeout: 15_000 },
      );

      // Nothing followed the cancel: not on the page, not in the store.
      assert.deepEqual(await shown(page, jobId), atCancel, "no event for the job after job_cancelled");
      assert.equal(await card.getAttribute("data-last-seq"), String(atCancel.length));
      const later = await local.invoke({ action: "get_job", job_id: jobId });
      assert.equal(later.status, "cancelled");
      assert.equal(later.cancel_requested, true);
      assert.equal(later.last_seq, recorded.last_seq, "nothing more was recorded for the job");
      // And the job's status, as the page's client asks for it over its socket.
      const snapshot = await page.evaluate((id) => window.demo.client.status(id), jobId);
      assert.equal(snapshot.type, "job_status");
      assert.equal(snapshot.status, "cancelled");
      assert.equal(snapshot.last_seq, atCancel.length);

      // Stop the clock.
      await page.locator(`.job[data-job-id="${clockId}"] button.cancel`).click();
      await page.waitForSelector(`#finished li[data-job-id="${clockId}"][data-status=cancelled]`);
      assertGapless(await shown(page, clockId), clockId);
    });

    test("a failing job shows its error", async () => {
      await page.goto(`${local.httpUrl}/?steps=10&interval_ms=20`);
      await page.waitForSelector("#connection[data-state=open]");
      const jobId = await startJob(page, "#start-failing");
      const item = page.locator(`#finished li[data-job-id="${jobId}"][data-status=failed]`);
      await item.waitFor();
      assert.match(await item.textContent(), /The source stopped answering — Try again in a few minutes/);
      assertGapless(await shown(page, jobId), jobId);
    });
  });
}
