// The demo chat page in headless Chromium against the real lockstep-server:
// two users see each other join within a second; one goes offline (its
// WebSocket cut by a TCP proxy: Chromium's offline emulation leaves open
// WebSockets up), queues messages that show as pending, comes back, and
// the other sees them once and in order, also when the offline page was
// reloaded during the outage; a leave shows after the presence grace; and
// the PRD's five metrics are computable from /metrics afterwards.
// Screenshots of the final states go to e2e/artifacts/. Bounded waits, no
// sleeps.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { artifacts, demoDir, launch, scrape, startProxy, startServer, sum, until, waitIn } from "./helpers.mjs";

const GRACE_MS = 400;
const CHANNEL = "e2e";
let server;
let proxy;
let browser;
let alice;
let bob;

before(async () => {
  server = await startServer([
    "--dev", "--web-root", demoDir, "--presence-grace-ms", String(GRACE_MS), "--client-report-every-ms", "100",
  ]);
  proxy = await startProxy(server.port);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await proxy?.stop();
  await server?.stop();
});

/** A page of the demo in its own browser context (its own IndexedDB), signed in as `user`. */
async function open(user, extra = "") {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.errors = errors;
  page.url_ = `${server.url}/?user=${user}&channel=${CHANNEL}&metricsInterval=200${extra}`;
  await page.goto(page.url_);
  return page;
}

const subscribed = (page, what) => waitIn(page, `${what} subscribed`,
  (ch) => document.querySelector(`[data-testid=pane][data-channel="${ch}"]`)?.dataset.status === "subscribed", CHANNEL);

const members = (page) => page.$$eval("[data-testid=members] li", (lis) => lis.map((li) => li.textContent));

/** The messages a page shows: `[author, text, status]`. */
const messages = (page) => page.$$eval("[data-testid=message]", (lis) => lis.map((li) => [
  li.dataset.author, li.querySelector(".body").textContent, li.dataset.status,
]));

async function say(page, text) {
  await page.fill("[data-testid=composer]", text);
  await page.click("[data-testid=send]");
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

test("two pages join a channel and each sees the other in the member list within a second", async () => {
  // Alice reaches the server through the proxy, so her connection can be cut.
  alice = await open("alice", `&server=${encodeURIComponent(proxy.url)}`);
  await subscribed(alice, "alice");
  await waitIn(alice, "alice in her own member list", () => [...document.querySelectorAll("[data-testid=members] li")]
    .some((li) => li.textContent === "alice"));
  bob = await open("bob");
  await subscribed(bob, "bob");
  // Both within a second of bob's join.
  const inList = (who) => [...document.querySelectorAll("[data-testid=members] li")].some((li) => li.textContent === who);
  await Promise.all([
    waitIn(alice, "alice sees bob", inList, "bob", 1_000),
    waitIn(bob, "bob sees alice", inList, "alice", 1_000),
  ]);
  assert.deepEqual(await members(alice), ["alice", "bob"]);
  assert.deepEqual(await members(bob), ["alice", "bob"]);

  // Typing and read receipts show on the other page.
  await alice.fill("[data-testid=composer]", "typ");
  await waitIn(bob, "bob sees alice typing", () => document.querySelector("[data-testid=typing]")?.textContent === "alice is typing…");
  await say(alice, "hello bob");
  await waitIn(bob, "bob has it", () => document.querySelector("[data-testid=message]")?.textContent.includes("hello bob"));
  await waitIn(alice, "alice's message sent and seen by bob", () => document.querySelector("[data-testid=message]")?.dataset.status === "sent"
    && document.querySelector("[data-testid=seen]")?.textContent === "Seen by bob");
  await shot(alice, "1-alice-joined");
  await shot(bob, "1-bob-joined");
});

test("offline: three messages pending, then delivered to the other page once and in order", async () => {
  proxy.cut();
  await waitIn(alice, "alice offline", () => document.querySelector("[data-testid=connection]")?.dataset.state !== "connected");
  for (const text of ["offline 1", "offline 2", "offline 3"]) await say(alice, text);
  const pendingOnes = await messages(alice);
  assert.deepEqual(pendingOnes.filter(([, t]) => t.startsWith("offline")).map(([, t, s]) => [t, s]),
    [["offline 1", "pending"], ["offline 2", "pending"], ["offline 3", "pending"]]);
  await waitIn(alice, "the offline banner counts them", () => document.querySelector("[data-testid=offline]")?.textContent.includes("3 messages waiting"));
  await shot(alice, "2-alice-offline-pending");

  proxy.heal();
  await waitIn(alice, "alice's messages sent", () => [...document.querySelectorAll("[data-testid=message]")]
    .filter((li) => li.textContent.includes("offline")).every((li) => li.dataset.status === "sent"));
  await waitIn(bob, "bob has the three", () => [...document.querySelectorAll("[data-testid=message]")]
    .filter((li) => li.textContent.includes("offline")).length >= 3);
  const seen = (await messages(bob)).filter(([, t]) => t.startsWith("offline"));
  assert.deepEqual(seen, [["alice", "offline 1", "sent"], ["alice", "offline 2", "sent"], ["alice", "offline 3", "sent"]]);
  assert.equal(await alice.$eval("[data-testid=connection]", (e) => e.dataset.state), "connected");
  // Alice's client tells the server how its reconnection went (client:metrics).
  await until("alice's reconnection reported", async () => {
    const m = await scrape(server.url);
    return sum(m, "lockstep_client_reconnects_total", 'outcome="resumed"') >= 1 && sum(m, "lockstep_client_disconnects_total") >= 1;
  });
});

test("a page reloaded during the outage still delivers its queued messages, once", async () => {
  proxy.cut();
  await waitIn(alice, "alice offline", () => document.querySelector("[data-testid=connection]")?.dataset.state !== "connected");
  for (const text of ["queued 1", "queued 2", "queued 3"]) await say(alice, text);
  await waitIn(alice, "three queued", () => [...document.querySelectorAll("[data-testid=message][data-status=pending]")].length === 3);
  // The outbox is saved to IndexedDB as it changes: reload while offline.
  await alice.reload();
  await waitIn(alice, "restored as pending after the reload", () => {
    const pending = [...document.querySelectorAll("[data-testid=message][data-status=pending]")];
    return pending.length === 3 && pending.map((li) => li.querySelector(".body").textContent).join() === "queued 1,queued 2,queued 3";
  });
  assert.notEqual(await alice.$eval("[data-testid=connection]", (e) => e.dataset.state), "connected", "still offline");
  await shot(alice, "3-alice-reloaded-offline");

  proxy.heal();
  await waitIn(bob, "bob has the queued three", () => [...document.querySelectorAll("[data-testid=message]")]
    .filter((li) => li.textContent.includes("queued")).length >= 3);
  await waitIn(alice, "alice's queued ones sent", () => {
    const queued = [...document.querySelectorAll("[data-testid=message]")].filter((li) => li.textContent.includes("queued"));
    return queued.length === 3 && queued.every((li) => li.dataset.status === "sent");
  });
  const all = (await messages(bob)).map(([author, text]) => `${author}:${text}`);
  assert.deepEqual(all, [
    "alice:hello bob", "alice:offline 1", "alice:offline 2", "alice:offline 3", "alice:queued 1", "alice:queued 2", "alice:queued 3",
  ], "every message once, in order");
  // What alice's reloaded page shows agrees (the backlog it loaded, then its own).
  assert.deepEqual((await messages(alice)).map(([, text]) => text), all.map((m) => m.split(":")[1]));
  await shot(alice, "4-alice-back");
  await shot(bob, "4-bob-got-everything");
});

test("a leave shows on the other page after the presence grace", async () => {
  await waitIn(alice, "alice sees bob", () => [...document.querySelectorAll("[data-testid=members] li")].some((li) => li.textContent === "bob"));
  const closedAt = Date.now();
  await bob.context().close();
  await waitIn(alice, "bob gone from alice's list", () => ![...document.querySelectorAll("[data-testid=members] li")]
    .some((li) => li.textContent === "bob"));
  const took = Date.now() - closedAt;
  assert.ok(took >= GRACE_MS, `bob left the list ${took} ms after closing, before the ${GRACE_MS} ms grace`);
  assert.deepEqual(await members(alice), ["alice"]);
  await shot(alice, "5-alice-after-bob-left");
  assert.deepEqual(alice.errors, [], "no uncaught errors on alice's page");
  assert.deepEqual(bob.errors, [], "no uncaught errors on bob's page");
});

test("the PRD's five metrics are computable from /metrics, browsers' reports included", async () => {
  // Alice's client reports every 200 ms while connected: wait for the reconnections.
  const m = await waitUntilReported();
  const rate = (ok, all) => (all === 0 ? NaN : ok / all);
  const connection = rate(sum(m, "lockstep_handshakes_total", 'outcome="accepted"'), sum(m, "lockstep_handshakes_total"));
  const clientConnection = rate(sum(m, "lockstep_client_connects_total"), sum(m, "lockstep_client_connect_attempts_total"));
  const subscription = rate(sum(m, "lockstep_replies_total", 'kind="join"', 'outcome="ok"'), sum(m, "lockstep_replies_total", 'kind="join"'));
  const sendLatencyCount = sum(m, "lockstep_reply_latency_seconds_count", 'kind="send"');
  const ackLatencyCount = sum(m, "lockstep_client_ack_latency_seconds_count");
  const errors = sum(m, "lockstep_replies_total") - sum(m, "lockstep_replies_total", 'outcome="ok"');
  const resumed = rate(sum(m, "lockstep_client_reconnects_total", 'outcome="resumed"'), sum(m, "lockstep_client_reconnects_total"));
  const rejoins = rate(sum(m, "lockstep_joins_total", 'from="position"', 'outcome="recovered"'), sum(m, "lockstep_joins_total", 'from="position"'));
  console.log(JSON.stringify({ connection, clientConnection, subscription, sendLatencyCount, ackLatencyCount, errors, resumed, rejoins }));
  assert.equal(connection, 1, "every handshake accepted");
  assert.ok(clientConnection > 0 && clientConnection < 1, `the proxy refused some attempts: ${clientConnection}`);
  assert.equal(subscription, 1, "every join accepted");
  assert.ok(sendLatencyCount >= 7, `every send timed on the server: ${sendLatencyCount}`);
  assert.ok(ackLatencyCount >= 1, "browsers reported ack latencies");
  assert.equal(errors, 0, "no request refused");
  assert.equal(resumed, 1, "every reconnection resumed");
  assert.ok(rejoins > 0, "re-joins from a position, recovered");
  assert.equal(sum(m, "lockstep_client_reports_total", 'outcome="invalid"'), 0);
});

async function waitUntilReported() {
  return until("the browsers' reports", async () => {
    const m = await scrape(server.url);
    return sum(m, "lockstep_client_ack_latency_seconds_count") >= 7 ? m : null;
  });
}
