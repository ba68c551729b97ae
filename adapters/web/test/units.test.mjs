// Unit tests without a server: the store's merging rules, the worker
// timer's protocol, outbox ownership among tabs, and the config check.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LockstepError, MemoryOutboxStorage, Store, WorkerTicker, createClient } from "../dist/index.js";

const limits = { maxMessagesPerChannel: 5, maxResolvedSends: 10 };
const msg = (seq, author, cmid, body) => ({
  type: "log", channelId: "c", event: { type: "message", seq, messageId: `m${seq}`, authorId: author, clientMsgId: cmid, body, ts: seq },
});
const connected = { type: "state", state: { name: "connected", generation: 1, userId: "me" } };
const items = (store) => store.getSnapshot().channels.get("c").items;

test("an own message is shown once whether its ack or its broadcast comes first", () => {
  for (const ackFirst of [true, false]) {
    const s = new Store(limits);
    s.apply([connected, { type: "pending", channelId: "c", id: "x1", command: { kind: "send", body: "hi" } }]);
    assert.deepEqual(items(s).map((i) => [i.key, i.status]), [["c:x1", "pending"]]);
    const ack = { type: "outcome", channelId: "c", id: "x1", outcome: { status: "sent", seq: 2, messageId: "m2" } };
    const steps = ackFirst ? [ack, msg(1, "bob", "b1", "before"), msg(2, "me", "x1", "hi")]
      : [msg(1, "bob", "b1", "before"), msg(2, "me", "x1", "hi"), ack];
    for (const e of steps) s.apply([e]);
    assert.deepEqual(items(s).map((i) => [i.key, i.seq, i.status]), [["m:m1", 1, "sent"], ["c:x1", 2, "sent"]]);
    assert.equal(s.getSnapshot().sends.get("x1").status, "sent");
  }
});

test("a failed send stays visible until dismissed; a restored duplicate is not shown twice", () => {
  const s = new Store(limits);
  const pending = { type: "pending", channelId: "c", id: "x1", command: { kind: "send", body: "hi" } };
  s.apply([connected, pending, pending]);
  assert.equal(items(s).length, 1);
  s.apply([{ type: "outcome", channelId: "c", id: "x1", outcome: { status: "failed", reason: "refused", code: "too_large", message: "refused: too_large" } }]);
  assert.equal(items(s)[0].status, "failed");
  assert.equal(items(s)[0].error.code, "too_large");
  s.dismiss("c", "x1");
  assert.equal(items(s).length, 0);
});

test("gaps and resets are visible, edits and deletes apply in place, the view is bounded", () => {
  const s = new Store(limits);
  s.ensure("c"); // as client.subscribe() does
  s.apply([connected, msg(1, "bob", "b1", "one"), { type: "truncated", channelId: "c", from: 2, to: 4 }, msg(5, "bob", "b5", "five")]);
  assert.deepEqual(items(s).map((i) => i.kind), ["message", "truncated", "message"]);
  s.apply([{ type: "log", channelId: "c", event: { type: "updated", seq: 6, messageId: "m5", body: "FIVE" } }]);
  s.apply([{ type: "log", channelId: "c", event: { type: "deleted", seq: 7, messageId: "m1" } }]);
  assert.deepEqual(items(s).filter((i) => i.kind === "message").map((i) => [i.body, i.edited, i.deleted]), [[undefined, false, true], ["FIVE", true, false]]);
  s.apply([{ type: "reset", channelId: "c", epoch: "9" }]);
  assert.deepEqual(items(s).map((i) => i.kind), ["reset"]);
  assert.equal(s.getSnapshot().channels.get("c").epoch, "9");
  for (let seq = 1; seq <= 20; seq++) s.apply([msg(seq, "bob", `b${seq}`, seq)]);
  assert.equal(items(s).length, limits.maxMessagesPerChannel);
  assert.equal(items(s).at(-1).seq, 20);
});

test("members, typing and read watermarks follow their events; listeners hear once per burst", async () => {
  const s = new Store(limits);
  s.ensure("c");
  await Promise.resolve();
  let heard = 0;
  const stop = s.subscribe(() => heard++);
  s.apply([{ type: "members", channelId: "c", members: ["bob", "me"] }, { type: "memberJoined", channelId: "c", userId: "zoe" }]);
  s.apply([{ type: "typing", channelId: "c", userId: "zoe", active: true }, { type: "read", channelId: "c", userId: "bob", upTo: 4 }]);
  s.apply([{ type: "read", channelId: "c", userId: "bob", upTo: 2 }, { type: "memberLeft", channelId: "c", userId: "zoe" }]);
  await Promise.resolve();
  assert.equal(heard, 1);
  const ch = s.getSnapshot().channels.get("c");
  assert.deepEqual(ch.members, ["bob", "me"]);
  assert.deepEqual(ch.typing, []);
  assert.equal(ch.reads.get("bob"), 4, "max wins");
  stop();
  assert.equal(s.listenerCount(), 0);
});

test("the worker timer arms, re-arms and disarms by message, and fires only when armed", () => {
  const posted = [];
  let worker;
  let fired = 0;
  const ticker = new WorkerTicker(() => fired++, () => {
    worker = { postMessage: (m) => posted.push(m), terminate: () => posted.push("terminated"), onmessage: null };
    return worker;
  });
  ticker.arm(250);
  ticker.arm(100);
  assert.equal(ticker.armed(), 1);
  worker.onmessage({ data: 0 });
  assert.equal(fired, 1);
  assert.equal(ticker.armed(), 0);
  worker.onmessage({ data: 0 });
  assert.equal(fired, 1, "a stale message does not fire a disarmed timer");
  ticker.arm(null);
  ticker.dispose();
  assert.deepEqual(posted, [250, 100, -1, "terminated"]);
});

/** A minimal `navigator.locks`: exclusive, `ifAvailable`, a queue, abort. */
function fakeLocks() {
  const held = new Map();
  return {
    request(name, opts, cb) {
      const q = held.get(name);
      if (q === undefined) {
        held.set(name, []);
        return cb({ name }).finally(() => {
          const next = held.get(name).shift();
          if (next === undefined) held.delete(name);
          else next();
        });
      }
      if (opts.ifAvailable) return cb(null);
      return new Promise((resolve, reject) => {
        opts.signal?.addEventListener("abort", () => reject(new Error("aborted")));
        q.push(() => resolve(cb({ name }).finally(() => {
          const next = held.get(name).shift();
          if (next === undefined) held.delete(name);
          else next();
        })));
      });
    },
  };
}

test("one tab owns the outbox; the next takes it over, restoring what the first left", async () => {
  const locks = fakeLocks();
  const storage = new MemoryOutboxStorage();
  const base = { url: "http://127.0.0.1:9", token: "dev:me", autoConnect: false, timer: "main", storage, locks, channels: ["c"] };
  const first = await createClient(base);
  const sent = first.send("c", "unsent");
  assert.match(await storage.load("default"), new RegExp(sent.id));
  const second = await createClient(base);
  assert.equal(second.store.getSnapshot().channels.get("c").items.length, 0, "not the owner: nothing restored");
  await first.close();
  const { until } = await import("./helpers.mjs");
  await until("the second tab restored the entry", () =>
    second.store.getSnapshot().channels.get("c").items.some((i) => i.key === `c:${sent.id}`));
  await second.close();
});

test("options out of range and missing tokens are typed errors", async () => {
  await assert.rejects(createClient({ url: "http://x" }), (e) => e instanceof LockstepError && e.kind === "invalid");
  await assert.rejects(
    createClient({ url: "http://x", token: "t", storage: null, outboxMax: 0, autoConnect: false }),
    (e) => e instanceof LockstepError && e.kind === "invalid" && /outboxMax/.test(e.message),
  );
});

test("the meter judges a reconnection by how its channels came back and reports deltas once", async () => {
  const { Meter, bucketOf, LATENCY_BOUNDS_MS } = await import("../dist/index.js");
  assert.equal(bucketOf(0), 0);
  assert.equal(bucketOf(5), 0);
  assert.equal(bucketOf(6), 1);
  assert.equal(bucketOf(30_001), LATENCY_BOUNDS_MS.length);
  const meter = new Meter();
  const idle = { name: "idle" };
  const state = (name, extra = {}) => ({ type: "state", state: { name, ...extra } });
  const sub = (channelId, status) => ({ type: "subscription", channelId, state: { status }, epoch: "e1", lastSeq: 0 });
  const wanted = () => new Set(["a", "b"]);
  meter.observe([state("connecting", { attempt: 1, generation: 1 }), state("connected", { generation: 1, userId: "me" }), sub("a", "subscribed"), sub("b", "subscribed")], idle, wanted);
  // Lost, then back: both channels resume exactly.
  meter.observe([state("reconnecting", { attempt: 1, retryAt: 0 })], { name: "connected" }, wanted);
  meter.observe([state("connecting", { attempt: 2, generation: 2 }), state("connected", { generation: 2, userId: "me" }), sub("a", "subscribed")], { name: "reconnecting" }, wanted);
  assert.equal(meter.metrics().resumed, 0, "not judged before every channel is back");
  meter.observe([sub("b", "subscribed")], { name: "connected" }, wanted);
  // Lost again; this time channel b comes back with a gap.
  meter.observe([state("reconnecting", { attempt: 1, retryAt: 0 })], { name: "connected" }, wanted);
  meter.observe([state("connected", { generation: 3, userId: "me" }), sub("a", "subscribed"), sub("b", "subscribed"),
    { type: "truncated", channelId: "b", from: 1, to: 4 }], { name: "reconnecting" }, wanted);
  const m = meter.metrics();
  assert.deepEqual([m.connects, m.reconnects, m.resumed, m.fresh, m.disconnects], [3, 2, 1, 1, 2]);
  assert.deepEqual(m.recoveries, { recovered: 3, truncated: 1, reset: 0 });
  // A live message counts its commit-to-store latency; a join reply's backlog does not.
  const log = (channelId, ts) => ({ type: "log", channelId, event: { type: "message", seq: 1, messageId: "m", authorId: "x", clientMsgId: "c", ts } });
  meter.observe([log("a", Date.now())], { name: "connected" }, wanted);
  meter.observe([sub("a", "subscribed"), log("a", 0)], { name: "connected" }, wanted);
  assert.equal(meter.metrics().deliveryLatencyBuckets.reduce((x, y) => x + y, 0), 1);

  assert.equal(meter.dirty(), true);
  const first = meter.report();
  assert.equal(first.v, 1);
  assert.deepEqual([first.connects, first.resumed, first.fresh, first.truncated, first.joinsOk], [3, 1, 1, 1, 7]);
  assert.equal(first.ackLatency.length, LATENCY_BOUNDS_MS.length + 1);
  assert.equal(meter.report(), null, "told once");
  assert.equal(meter.dirty(), false);
  meter.observe([state("reconnecting", { attempt: 1, retryAt: 0 })], { name: "connected" }, wanted);
  assert.deepEqual(meter.report().disconnects, 1);
});

test("a report's counts are capped at what the server accepts; the rest comes next", async () => {
  const { Meter } = await import("../dist/index.js");
  const meter = new Meter();
  const events = [];
  for (let i = 0; i < 12_000; i++) events.push({ type: "pending", channelId: "a", id: `x${i}`, command: { kind: "send", body: 1 } });
  for (let i = 0; i < 12_000; i++) events.push({ type: "outcome", channelId: "a", id: `x${i}`, outcome: { status: "sent", seq: i + 1, messageId: `m${i}` } });
  meter.observe(events, { name: "connected" }, () => new Set());
  const first = meter.report();
  assert.equal(first.sendsOk, 10_000);
  assert.equal(first.ackLatency.reduce((x, y) => x + y, 0), 10_000);
  const second = meter.report();
  assert.equal(second.sendsOk, 2_000);
  assert.equal(second.ackLatency.reduce((x, y) => x + y, 0), 2_000);
  assert.equal(meter.report(), null);
});

test("a channel the app left is not brought back by its late events", () => {
  const s = new Store(limits);
  const sub = (status) => ({ type: "subscription", channelId: "c", state: { status }, epoch: "e", lastSeq: 0 });
  s.apply([connected, sub("subscribed"), { type: "members", channelId: "c", members: ["me", "bob"] },
    { type: "pending", channelId: "c", id: "x1", command: { kind: "send", body: "hi" } }]);
  s.forget("c");
  s.apply([sub("unsubscribed"), { type: "memberLeft", channelId: "c", userId: "bob" },
    { type: "typing", channelId: "c", userId: "bob", active: true },
    { type: "outcome", channelId: "c", id: "x1", outcome: { status: "failed", reason: "unsubscribed", code: null, message: "left" } }]);
  assert.equal(s.getSnapshot().channels.has("c"), false);
  assert.equal(s.getSnapshot().sends.get("x1").status, "failed", "the send record is still resolved");
  // Joining again shows it again.
  s.apply([sub("subscribing")]);
  assert.equal(s.getSnapshot().channels.get("c").subscription.status, "subscribing");
});

test("the default transport's parser keeps lockstep's event packets as text and decodes the rest as socket.io does", async () => {
  const { rawEventParser, RawPacket } = await import("../dist/index.js");
  const decode = (text) => {
    const decoder = new rawEventParser.Decoder();
    const out = [];
    decoder.on("decoded", (p) => out.push(p));
    decoder.add(text);
    return out;
  };
  const [raw] = decode('2["message:new",{"seq":1,"body":"é😀"}]');
  assert.equal(raw.type, 2);
  assert.equal(raw.nsp, "/");
  assert.equal(raw.id, undefined);
  assert.equal(raw.data[0], "message:new");
  assert.ok(raw.data[1] instanceof RawPacket);
  assert.equal(raw.data[1].text, '["message:new",{"seq":1,"body":"é😀"}]');
  // An ack id, another namespace, an escaped name, an ack: decoded as usual.
  assert.deepEqual(decode('21["x",1]'), [{ type: 2, nsp: "/", id: 1, data: ["x", 1] }]);
  assert.deepEqual(decode('2/chat,["x",1]'), [{ type: 2, nsp: "/chat", data: ["x", 1] }]);
  assert.deepEqual(decode('2["a\\"b",1]'), [{ type: 2, nsp: "/", data: ['a"b', 1] }]);
  assert.deepEqual(decode('37[{"ok":true}]'), [{ type: 3, nsp: "/", id: 7, data: [{ ok: true }] }]);
  // A name socket.io keeps for itself is refused as it always was.
  assert.throws(() => decode('2["disconnect",{}]'), /invalid payload/);
});

test("events reach the store in order, exactly once, as packet text or as parsed payloads", async () => {
  let sink;
  const emits = [];
  const transport = (s) => {
    sink = s;
    return {
      open() {}, connect() {}, emit(generation, name, payload, ack) { emits.push({ name, ack }); },
      close() {}, closeAll() {}, live: () => 0,
    };
  };
  const client = await createClient({
    url: "http://test.invalid", token: "dev:reader", storage: null, timer: "main", transport, channels: ["c"],
  });
  sink.opened(1, "dev:reader");
  sink.event(1, "session", { userId: "reader", version: 1 });
  await new Promise((resolve) => setImmediate(resolve));
  const join = emits.find((e) => e.name === "channel:join");
  sink.ack(1, join.ack, { ok: true, channelId: "c", epoch: 1, headSeq: 0, members: ["reader", "w"], events: [], recovered: false });
  const payload = (seq) => ({
    channelId: "c", seq, messageId: `m${seq}`, authorId: "w", clientMsgId: `w${seq}`, body: { text: `é${seq} 😀` }, ts: seq, extra: true,
  });
  // One burst: packets and objects mixed, #3 early, #2 twice, and a packet that does not decode.
  sink.packet(1, JSON.stringify(["message:new", payload(1)]));
  sink.event(1, "message:new", payload(3));
  sink.packet(1, JSON.stringify(["message:new", payload(2)]));
  sink.packet(1, JSON.stringify(["message:new", payload(2)]));
  sink.packet(1, '["message:new",{"seq":"x"}]');
  sink.packet(1, ` [ "message:new" , ${JSON.stringify(payload(4))} , "ignored" ] `);
  await new Promise((resolve) => setImmediate(resolve));
  // The next burst: a stale socket's packet is ignored.
  sink.event(1, "message:new", payload(5));
  sink.packet(0, JSON.stringify(["message:new", payload(6)]));
  await new Promise((resolve) => setImmediate(resolve));
  const ch = client.store.getSnapshot().channels.get("c");
  const messages = ch.items.filter((i) => i.kind === "message");
  assert.deepEqual(messages.map((i) => [i.seq, i.body.text, i.key]), [1, 2, 3, 4, 5].map((s) => [s, `é${s} 😀`, `m:m${s}`]));
  assert.equal(ch.lastSeq, 5);
  assert.equal(client.metrics().delivered, 5);
  await client.close();
});
