// The package under Node against the real lockstep-server over real
// socket.io-client: connect, join, optimistic send, recovery after a cut,
// refused joins, a restored outbox, token refresh, panic recovery, and a
// teardown that leaves nothing behind.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { indexedDB } from "fake-indexeddb";
import { io } from "socket.io-client";

import { IndexedDbOutboxStorage, LockstepError, MemoryOutboxStorage, createClient } from "../dist/index.js";
import { handles, jwt, options, startProxy, startServer, stored, until } from "./helpers.mjs";

let server;
let baseline;
const clients = [];

async function client(url, extra = {}) {
  const c = await createClient(options(url, extra));
  clients.push(c);
  return c;
}

/** A plain socket.io-client peer (what a non-lockstep app does). */
async function plain(url, user) {
  const s = io(url, { auth: { token: `dev:${user}` }, transports: ["websocket"], reconnection: false, forceNew: true });
  await new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", reject);
  });
  return s;
}

before(async () => {
  baseline = handles();
  server = await startServer();
});

after(async () => {
  for (const c of clients) await c.close();
  await server?.stop();
});

test("connect, join, and an optimistic send shown once: pending, then sent at its seq", async () => {
  const alice = await client(server.url, { channels: ["t1"] });
  await until("alice subscribed", () => alice.store.getSnapshot().channels.get("t1")?.subscription.status === "subscribed");
  assert.equal(alice.state.name, "connected");
  assert.equal(alice.store.getSnapshot().userId, "alice");

  let notified = 0;
  const stop = alice.store.subscribe(() => notified++);
  const handle = alice.send("t1", { text: "hello" });
  const now = alice.store.getSnapshot().channels.get("t1").items;
  assert.equal(now.length, 1);
  assert.equal(now[0].status, "pending");
  assert.equal(now[0].key, `c:${handle.id}`);
  assert.deepEqual(now[0].body, { text: "hello" });

  const outcome = await handle.outcome;
  assert.equal(outcome.status, "sent");
  assert.equal(outcome.seq, 1);
  // The broadcast of one's own message merges with the entry: one item.
  await until("the broadcast merged", () => stored(alice, "t1").length === 1
    && alice.store.getSnapshot().channels.get("t1").items[0].ts !== null);
  const items = alice.store.getSnapshot().channels.get("t1").items;
  assert.equal(items.length, 1);
  assert.equal(items[0].key, `c:${handle.id}`, "the key is stable from pending to sent");
  assert.equal(items[0].mine, true);
  assert.equal(items[0].authorId, "alice");
  assert.equal(alice.store.getSnapshot().sends.get(handle.id).status, "sent");
  assert.ok(notified > 0);
  stop();
  const m = alice.metrics();
  assert.equal(m.sent, 1);
  assert.equal(m.subscriptionsSucceeded, 1);
  assert.equal(m.sendLatency.count, 1);
});

test("a snapshot is the same object until something changes", async () => {
  const alice = await client(server.url, { channels: ["t2"] });
  await until("subscribed", () => alice.store.getSnapshot().channels.get("t2")?.subscription.status === "subscribed");
  const a = alice.store.getSnapshot();
  assert.equal(alice.store.getSnapshot(), a);
  alice.send("t2", "x");
  const b = alice.store.getSnapshot();
  assert.notEqual(b, a);
  assert.equal(b.channels.get("t2").items.length, 1);
});

test("after a cut, the messages missed are recovered in order, exactly once", async () => {
  const proxy = await startProxy(server.port);
  const alice = await client(proxy.url, { channels: ["t3"] });
  await until("alice subscribed", () => alice.store.getSnapshot().channels.get("t3")?.subscription.status === "subscribed");
  const bob = await client(server.url, { token: "dev:bob", channels: ["t3"] });
  await until("bob subscribed", () => bob.store.getSnapshot().channels.get("t3")?.subscription.status === "subscribed");
  await bob.send("t3", "b1").outcome;
  await until("alice has b1", () => stored(alice, "t3").length === 1);

  proxy.cut();
  await until("alice offline", () => alice.state.name !== "connected");
  for (const text of ["b2", "b3", "b4"]) assert.equal((await bob.send("t3", text).outcome).status, "sent");
  proxy.heal();
  await until("alice has everything", () => stored(alice, "t3").length === 4);
  assert.deepEqual(stored(alice, "t3"), [[1, "b1"], [2, "b2"], [3, "b3"], [4, "b4"]]);
  // A later message goes on from there, nothing twice.
  await bob.send("t3", "b5").outcome;
  await until("b5", () => stored(alice, "t3").length === 5);
  assert.deepEqual(stored(alice, "t3").map(([seq]) => seq), [1, 2, 3, 4, 5]);
  assert.ok(alice.metrics().reconnects >= 1);
  assert.ok(alice.metrics().disconnects >= 1);
  await proxy.stop();
});

test("a refused join is shown as failed and sends there are refused", async () => {
  const alice = await client(server.url, { channels: ["private:bob"] });
  await until("failed", () => alice.store.getSnapshot().channels.get("private:bob")?.subscription.status === "failed");
  assert.deepEqual(alice.store.getSnapshot().channels.get("private:bob").subscription, { status: "failed", code: "forbidden" });
  assert.throws(() => alice.send("private:bob", "hi"), (e) => e instanceof LockstepError && e.kind === "subscription_failed");
  assert.throws(() => alice.send("never-subscribed", "hi"), (e) => e instanceof LockstepError && e.kind === "not_subscribed");
  assert.throws(() => alice.send("bad channel!", "hi"), (e) => e instanceof LockstepError && e.kind === "invalid");
  assert.equal(alice.metrics().errors.forbidden, 1);
});

test("the outbox survives the client: restored, resent with its id, stored once", async () => {
  const storage = new IndexedDbOutboxStorage(indexedDB, "lockstep-test-outbox");
  const proxy = await startProxy(server.port);
  const first = await createClient(options(proxy.url, { storage, channels: ["t5"] }));
  await until("subscribed", () => first.store.getSnapshot().channels.get("t5")?.subscription.status === "subscribed");
  // The server stores the send but its ack never comes back.
  proxy.mute();
  const handle = first.send("t5", "survivor");
  await until("persisted", async () => (await storage.load("default"))?.includes(handle.id));
  await first.close();
  await proxy.stop();

  // A new client (a reloaded page) with the same storage, reaching the
  // server directly: the entry is restored before anything else.
  const second = await createClient(options(server.url, { storage, channels: ["t5"] }));
  clients.push(second);
  const item = second.store.getSnapshot().channels.get("t5").items.find((i) => i.key === `c:${handle.id}`);
  assert.equal(item?.status, "pending", "restored and shown at once");
  await until("sent", () => second.store.getSnapshot().sends.get(handle.id)?.status === "sent");
  await until("merged", () => stored(second, "t5").length === 1);
  assert.deepEqual(stored(second, "t5"), [[1, "survivor"]], "stored once: the retry was deduplicated");
  await until("persisted empty", async () => (await storage.load("default")) === '{"version":1,"entries":[]}');
});

test("a token provider is asked again for each reconnect, so an expired token is replaced", async () => {
  const secret = "test-secret-0123456789abcdef0123456789abcdef";
  const jwtServer = await startServer(["--jwt-secret", secret]);
  const proxy = await startProxy(jwtServer.port);
  const issued = [];
  const getToken = async () => {
    // The first token lives one second; later ones an hour.
    const token = jwt(secret, "alice", issued.length === 0 ? 1 : 3600);
    issued.push(Math.floor(Date.now() / 1000) + (issued.length === 0 ? 1 : 3600));
    return token;
  };
  const alice = await createClient(options(proxy.url, { token: undefined, getToken, channels: ["t6"] }));
  await until("connected", () => alice.state.name === "connected");
  proxy.cut();
  await until("offline", () => alice.state.name !== "connected");
  // Bounded wait until the first token has expired (the server allows no leeway).
  await until("the first token expired", () => Date.now() / 1000 > issued[0] + 1, 5_000);
  proxy.heal();
  await until("connected again", () => alice.state.name === "connected");
  assert.ok(issued.length >= 2, `getToken called ${issued.length} times`);
  await alice.close();
  await proxy.stop();
  await jwtServer.stop();
});

test("a bad token fails the connection for good with `unauthorized`", async () => {
  const alice = await client(server.url, { token: "not-a-dev-token" });
  await until("failed", () => alice.state.name === "failed");
  assert.equal(alice.state.reason, "unauthorized");
  assert.equal(alice.inspect().sockets, 0);
  assert.equal(alice.inspect().machine.armedTimers, 0);
});

test("a panic in the machine is reported and the client goes on from where it was", async () => {
  const errors = [];
  const storage = new MemoryOutboxStorage();
  const alice = await client(server.url, { channels: ["t8"], storage, onError: (e) => errors.push(e) });
  await until("subscribed", () => alice.store.getSnapshot().channels.get("t8")?.subscription.status === "subscribed");
  const bobSocket = await plain(server.url, "bob");
  const post = (text, n) => bobSocket.timeout(5000).emitWithAck("message:send", { channelId: "t8", clientMsgId: `b${n}`, body: text });
  await bobSocket.timeout(5000).emitWithAck("channel:join", { channelId: "t8" });
  await post("one", 1);
  await until("one", () => stored(alice, "t8").length === 1);

  alice.crash();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].kind, "panic");
  assert.match(errors[0].message, /deliberate panic/);
  await post("two", 2);
  const after = alice.send("t8", "after the crash");
  assert.equal((await after.outcome).status, "sent");
  await until("two and mine", () => stored(alice, "t8").length === 3);
  assert.deepEqual(stored(alice, "t8").map(([, b]) => b), ["one", "two", "after the crash"], "in order, none twice");
  assert.equal(alice.inspect().instances, 2);
  assert.equal(alice.metrics().panics, 1);
  bobSocket.disconnect();
});

test("close leaves no socket, timer or listener behind", async () => {
  const alice = await client(server.url, { channels: ["t9"] });
  await until("subscribed", () => alice.store.getSnapshot().channels.get("t9")?.subscription.status === "subscribed");
  alice.send("t9", "x");
  const stop = alice.store.subscribe(() => {});
  const live = alice.inspect();
  assert.equal(live.sockets, 1);
  assert.equal(live.storeListeners, 1);
  stop();
  await alice.close();
  const closed = alice.inspect();
  assert.deepEqual(
    { sockets: closed.sockets, timers: closed.timers, pageListeners: closed.pageListeners, storeListeners: closed.storeListeners },
    { sockets: 0, timers: 0, pageListeners: 0, storeListeners: 0 },
  );
  assert.throws(() => alice.send("t9", "late"), (e) => e.kind === "closed");
  // Node's own view: once every client of this file is closed, no timer
  // or TCP socket outlives them.
  for (const c of clients) await c.close();
  await until("no timers or sockets beyond the baseline", () => {
    const h = handles();
    return h.timers <= baseline.timers && h.sockets <= baseline.sockets;
  });
});

test("the client reports its counters to the server, which exports them: a reconnection that resumed", async () => {
  const reporting = await startServer(["--dev", "--client-report-every-ms", "20"]);
  const proxy = await startProxy(reporting.port);
  const alice = await createClient(options(proxy.url, { channels: ["r1"], metricsInterval: 50 }));
  try {
    await until("subscribed", () => alice.store.getSnapshot().channels.get("r1")?.subscription.status === "subscribed");
    assert.equal((await alice.send("r1", "before").outcome).status, "sent");
    proxy.cut();
    await until("offline", () => alice.state.name !== "connected");
    proxy.heal();
    await until("resumed", () => alice.metrics().resumed === 1);
    const scrape = async () => (await fetch(`${reporting.url}/metrics`)).text();
    const value = (text, series) => Number(text.split("\n").find((l) => l.startsWith(`${series} `))?.split(" ")[1] ?? 0);
    const body = await until("the reports arrived", async () => {
      const text = await scrape();
      return value(text, 'lockstep_client_reconnects_total{outcome="resumed"}') >= 1
        && value(text, "lockstep_client_disconnects_total") >= 1 ? text : null;
    });
    assert.ok(value(body, "lockstep_client_connect_attempts_total") >= 2, body);
    assert.ok(value(body, "lockstep_client_connects_total") >= 2, body);
    assert.ok(value(body, 'lockstep_client_recoveries_total{outcome="recovered"}') >= 1, body);
    assert.ok(value(body, 'lockstep_client_sends_total{outcome="sent"}') >= 1, body);
    assert.ok(value(body, "lockstep_client_ack_latency_seconds_count") >= 1, body);
    assert.equal(value(body, 'lockstep_client_reports_total{outcome="invalid"}'), 0, body);
    assert.ok(alice.metrics().reportsSent >= 1);
  } finally {
    await alice.close();
    await proxy.stop();
    await reporting.stop();
  }
  assert.equal(alice.inspect().timers, 0);
});
