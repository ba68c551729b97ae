// Interop scenarios: the real socket.io-client against lockstep-server.
//
//   node interop.mjs <url> <scenario>
//
// Each scenario asserts real outcomes of the contract (docs/PROTOCOL.md) and
// exits non-zero with a message on the first failure. No sleeps: waits are
// bounded polls for an expected outcome, and "nothing more arrived" is shown
// by a later ack on the same socket (Socket.IO keeps one socket's packets in
// order).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { io } from "socket.io-client";

const [url, scenario] = process.argv.slice(2);
const WAIT_MS = 5000;
const sockets = [];

/** Connects as `user` (a dev token); resolves once connected. */
function connect(user) {
  return connectWith(`dev:${user}`);
}

/** Connects presenting `token` (`undefined`: no auth at all). */
function connectWith(token) {
  return new Promise((resolve, reject) => {
    const s = io(url, {
      auth: token === undefined ? undefined : { token },
      transports: (process.env.LOCKSTEP_TEST_TRANSPORTS ?? "websocket").split(","),
      reconnection: false,
      forceNew: true,
    });
    sockets.push(s);
    s.received = [];
    s.onAny((event, payload) => s.received.push({ event, payload }));
    s.once("connect", () => resolve(s));
    s.once("connect_error", (err) => reject(err));
  });
}

const nowSecs = () => Math.floor(Date.now() / 1000);

/** An HS256 JWT for `sub` until `exp`, as any issuer would mint it. */
function mintJwt(secret, sub, exp) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const signed = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub, exp })}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

/** Emits `event` with an ack; resolves with the ack body. */
function req(s, event, payload) {
  return s.timeout(WAIT_MS).emitWithAck(event, payload);
}

/** Waits until `pred()` holds (bounded by `ms`). */
async function until(what, pred, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const got = (s, event) => s.received.filter((r) => r.event === event).map((r) => r.payload);

/** A round trip on `s`: every event the server emitted to it before has arrived. */
const flush = (s) => req(s, "channel:leave", { channelId: "flush" });

function ok(ack, what) {
  assert.equal(ack.ok, true, `${what}: ${JSON.stringify(ack)}`);
  return ack;
}
function refused(ack, code, what) {
  assert.equal(ack.ok, false, `${what}: expected ${code}, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error.code, code, `${what}: ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error.message, "string");
  assert.equal(ack.error.retryable, code === "rate_limited" || code === "unavailable");
  return ack;
}

const scenarios = {
  async join_send_broadcast() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    const aj = ok(await req(alice, "channel:join", { channelId: "room" }), "alice join");
    assert.deepEqual(Object.keys(aj).sort(), ["channelId", "epoch", "events", "headSeq", "members", "ok", "recovered"]);
    assert.equal(aj.channelId, "room");
    assert.equal(aj.headSeq, 0);
    assert.deepEqual(aj.events, []);
    assert.equal(aj.recovered, false);
    assert.equal(typeof aj.epoch, "number");
    const bj = ok(await req(bob, "channel:join", { channelId: "room" }), "bob join");
    assert.deepEqual(bj.members, ["alice", "bob"]);
    const sent = ok(await req(alice, "message:send", { channelId: "room", clientMsgId: "c1", body: { text: "hi" } }), "send");
    assert.deepEqual(Object.keys(sent).sort(), ["messageId", "ok", "seq", "ts"]);
    assert.equal(sent.seq, 1);
    assert.equal(typeof sent.messageId, "string");
    assert.ok(Number.isInteger(sent.ts) && Math.abs(sent.ts - Date.now()) < 60_000, "ts is server ms");
    const expected = { channelId: "room", seq: 1, messageId: sent.messageId, authorId: "alice", clientMsgId: "c1", body: { text: "hi" }, ts: sent.ts };
    await until("bob's message:new", () => got(bob, "message:new").length >= 1);
    await until("alice's own message:new", () => got(alice, "message:new").length >= 1);
    await flush(alice);
    await flush(bob);
    assert.deepEqual(got(bob, "message:new"), [expected]);
    assert.deepEqual(got(alice, "message:new"), [expected], "the sender gets its broadcast exactly once");
    // A second join of the same channel is idempotent: full ack, no presence event.
    const again = ok(await req(bob, "channel:join", { channelId: "room" }), "re-join");
    assert.equal(again.headSeq, 1);
    await flush(alice);
    assert.equal(got(alice, "presence:join").length, 1);
    // Pipelined sends get seqs in the order sent.
    const acks = await Promise.all([2, 3, 4, 5, 6].map((i) => req(bob, "message:send", { channelId: "room", clientMsgId: `b${i}`, body: i })));
    assert.deepEqual(acks.map((a) => a.seq), [2, 3, 4, 5, 6]);
    const h = ok(await req(alice, "channel:history", { channelId: "room" }), "history");
    assert.deepEqual(h.events.map((e) => [e.type, e.seq, e.body]), [["message", 1, { text: "hi" }], ...[2, 3, 4, 5, 6].map((i) => ["message", i, i])]);
    assert.equal(h.headSeq, 6);
    assert.equal(h.more, false);
    assert.equal(h.epoch, aj.epoch);
    const page = ok(await req(alice, "channel:history", { channelId: "room", after: 2, limit: 2 }), "history page");
    assert.deepEqual(page.events.map((e) => e.seq), [3, 4]);
    assert.equal(page.more, true);
  },

  async retry_is_stored_once() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    ok(await req(alice, "channel:join", { channelId: "room" }), "join");
    ok(await req(bob, "channel:join", { channelId: "room" }), "join");
    const msg = { channelId: "room", clientMsgId: "retry-1", body: "once" };
    const first = ok(await req(alice, "message:send", msg), "send");
    const retry = ok(await req(alice, "message:send", msg), "retry");
    assert.deepEqual(retry, first, "a retry gets the original ack");
    // From a new connection of the same user: still the original.
    const alice2 = await connect("alice");
    ok(await req(alice2, "channel:join", { channelId: "room" }), "join 2");
    assert.deepEqual(ok(await req(alice2, "message:send", msg), "retry 2"), first);
    // The same clientMsgId from another user is a new message.
    const other = ok(await req(bob, "message:send", msg), "bob");
    assert.equal(other.seq, 2);
    await until("bob sees both", () => got(bob, "message:new").length >= 2);
    await flush(bob);
    assert.deepEqual(got(bob, "message:new").map((m) => [m.seq, m.authorId]), [[1, "alice"], [2, "bob"]]);
    const h = ok(await req(bob, "channel:history", { channelId: "room" }), "history");
    assert.equal(h.events.length, 2, "stored once");
  },

  async reconnect_recovers_missed_events() {
    const alice = await connect("alice");
    let bob = await connect("bob");
    ok(await req(alice, "channel:join", { channelId: "news" }), "join");
    ok(await req(alice, "message:send", { channelId: "news", clientMsgId: "m1", body: 1 }), "send");
    const pos = ok(await req(bob, "channel:join", { channelId: "news" }), "bob join");
    assert.equal(pos.headSeq, 1);
    bob.disconnect();
    for (const i of [2, 3, 4]) ok(await req(alice, "message:send", { channelId: "news", clientMsgId: `m${i}`, body: i }), "send");
    bob = await connect("bob");
    const back = ok(await req(bob, "channel:join", { channelId: "news", epoch: pos.epoch, since: pos.headSeq }), "recover");
    assert.equal(back.recovered, true);
    assert.deepEqual(back.events.map((e) => [e.type, e.seq, e.body]), [["message", 2, 2], ["message", 3, 3], ["message", 4, 4]]);
    assert.equal(back.headSeq, 4);
    // At the head: nothing missed, recovered.
    const head = ok(await req(bob, "channel:join", { channelId: "news", epoch: pos.epoch, since: 4 }), "at head");
    assert.deepEqual([head.events, head.recovered], [[], true]);
    // A wrong epoch or a position beyond the head: the latest events, not recovered.
    const bob2 = await connect("bob");
    const wrong = ok(await req(bob2, "channel:join", { channelId: "news", epoch: pos.epoch + 12345, since: 1 }), "wrong epoch");
    assert.deepEqual([wrong.recovered, wrong.events.map((e) => e.seq)], [false, [1, 2, 3, 4]]);
    const bob3 = await connect("bob");
    const ahead = ok(await req(bob3, "channel:join", { channelId: "news", epoch: pos.epoch, since: 99 }), "ahead");
    assert.equal(ahead.recovered, false);
    // null counts as absent.
    const bob4 = await connect("bob");
    const plain = ok(await req(bob4, "channel:join", { channelId: "news", epoch: null, since: null }), "nulls");
    assert.deepEqual([plain.events, plain.recovered], [[], false]);
  },

  async presence_join_and_leave() {
    const alice = await connect("alice");
    ok(await req(alice, "channel:join", { channelId: "lobby" }), "join");
    const bob = await connect("bob");
    const bj = ok(await req(bob, "channel:join", { channelId: "lobby" }), "bob join");
    assert.deepEqual(bj.members, ["alice", "bob"]);
    await until("presence:join", () => got(alice, "presence:join").length >= 1);
    assert.deepEqual(got(alice, "presence:join"), [{ channelId: "lobby", userId: "bob" }]);
    await flush(bob);
    assert.deepEqual(got(bob, "presence:join"), [], "not sent to the joining connection");
    // A second connection of bob joining does not announce bob again.
    const bob2 = await connect("bob");
    ok(await req(bob2, "channel:join", { channelId: "lobby" }), "bob2 join");
    // bob's first connection leaves: bob is still present through bob2.
    ok(await req(bob, "channel:leave", { channelId: "lobby" }), "leave");
    // Leave is ok even when not joined.
    ok(await req(bob, "channel:leave", { channelId: "lobby" }), "leave again");
    bob2.disconnect();
    await until("presence:leave", () => got(alice, "presence:leave").length >= 1);
    await flush(alice);
    assert.deepEqual(got(alice, "presence:join"), [{ channelId: "lobby", userId: "bob" }]);
    assert.deepEqual(got(alice, "presence:leave"), [{ channelId: "lobby", userId: "bob" }]);
  },

  async typing_is_relayed_and_cleared() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    ok(await req(alice, "channel:join", { channelId: "t" }), "join");
    ok(await req(bob, "channel:join", { channelId: "t" }), "join");
    // Fire and forget, as apps do: no ack needed.
    bob.emit("typing", { channelId: "t", active: true });
    await until("typing", () => got(alice, "typing").length >= 1);
    assert.deepEqual(got(alice, "typing"), [{ channelId: "t", userId: "bob", active: true }]);
    await flush(bob);
    assert.deepEqual(got(bob, "typing"), [], "not relayed to the typer");
    refused(await req(bob, "typing", { channelId: "t", active: "yes" }), "invalid", "non-boolean active");
    refused(await req(bob, "typing", { channelId: "elsewhere", active: true }), "not_joined", "typing unjoined");
    bob.disconnect();
    await until("typing stopped", () => got(alice, "typing").length >= 2);
    assert.deepEqual(got(alice, "typing")[1], { channelId: "t", userId: "bob", active: false });
  },

  async read_receipts() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    ok(await req(alice, "channel:join", { channelId: "r" }), "join");
    ok(await req(bob, "channel:join", { channelId: "r" }), "join");
    for (const i of [1, 2]) ok(await req(alice, "message:send", { channelId: "r", clientMsgId: `r${i}`, body: i }), "send");
    assert.deepEqual(await req(bob, "message:read", { channelId: "r", upTo: 2 }), { ok: true, upTo: 2 });
    await until("receipt", () => got(alice, "message:read").length >= 1);
    await until("receipt to the reader too", () => got(bob, "message:read").length >= 1);
    assert.deepEqual(got(alice, "message:read"), [{ channelId: "r", userId: "bob", upTo: 2 }]);
    // Not advancing: acked with the current watermark, not broadcast.
    assert.deepEqual(await req(bob, "message:read", { channelId: "r", upTo: 1 }), { ok: true, upTo: 2 });
    refused(await req(bob, "message:read", { channelId: "r", upTo: 3 }), "invalid", "beyond head");
    refused(await req(bob, "message:read", { channelId: "r", upTo: -1 }), "invalid", "negative");
    refused(await req(bob, "message:read", { channelId: "r", upTo: "2" }), "invalid", "string");
    await flush(alice);
    assert.equal(got(alice, "message:read").length, 1);
  },

  async update_and_delete_authorization() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    ok(await req(alice, "channel:join", { channelId: "e" }), "join");
    ok(await req(bob, "channel:join", { channelId: "e" }), "join");
    const m = ok(await req(alice, "message:send", { channelId: "e", clientMsgId: "x", body: "v1" }), "send");
    refused(await req(bob, "message:update", { channelId: "e", messageId: m.messageId, body: "hack" }), "forbidden", "bob edits");
    refused(await req(bob, "message:delete", { channelId: "e", messageId: m.messageId }), "forbidden", "bob deletes");
    refused(await req(alice, "message:update", { channelId: "e", messageId: "nope", body: "x" }), "not_found", "unknown");
    const up = ok(await req(alice, "message:update", { channelId: "e", messageId: m.messageId, body: "v2" }), "edit");
    assert.deepEqual(up, { ok: true, seq: 2 });
    await until("updated", () => got(bob, "message:updated").length >= 1);
    assert.deepEqual(got(bob, "message:updated"), [{ channelId: "e", seq: 2, messageId: m.messageId, body: "v2" }]);
    const del = ok(await req(alice, "message:delete", { channelId: "e", messageId: m.messageId }), "delete");
    assert.deepEqual(del, { ok: true, seq: 3 });
    assert.deepEqual(await req(alice, "message:delete", { channelId: "e", messageId: m.messageId }), { ok: true, seq: 3 }, "repeated delete");
    refused(await req(alice, "message:update", { channelId: "e", messageId: m.messageId, body: "v3" }), "not_found", "edit deleted");
    await until("deleted", () => got(bob, "message:deleted").length >= 1);
    await flush(bob);
    assert.deepEqual(got(bob, "message:deleted"), [{ channelId: "e", seq: 3, messageId: m.messageId }]);
    const h = ok(await req(bob, "channel:history", { channelId: "e" }), "history");
    assert.deepEqual(h.events.map((e) => e.type), ["message", "updated", "deleted"]);
  },

  async every_error_code() {
    // unauthorized: no token, a bad token.
    for (const token of [undefined, "nope", "dev:bad user!"]) {
      await assert.rejects(connectWith(token), (err) => err.message === "unauthorized", `token ${token}`);
    }
    const alice = await connect("alice");
    // invalid: not an object, bad channel id, unknown event, bad field.
    refused(await req(alice, "channel:join", "room"), "invalid", "string payload");
    refused(await req(alice, "channel:join", null), "invalid", "null payload");
    refused(await req(alice, "channel:join", { channelId: "bad channel!" }), "invalid", "bad channel id");
    refused(await req(alice, "channel:join", { channelId: "x".repeat(129) }), "invalid", "long channel id");
    refused(await req(alice, "no:such:event", { channelId: "room" }), "invalid", "unknown event");
    // forbidden: someone else's private channel; one's own is fine.
    refused(await req(alice, "channel:join", { channelId: "private:bob" }), "forbidden", "private");
    ok(await req(alice, "channel:join", { channelId: "private:alice" }), "own private");
    // not_joined.
    refused(await req(alice, "message:send", { channelId: "room", clientMsgId: "a", body: 1 }), "not_joined", "send");
    refused(await req(alice, "channel:history", { channelId: "room" }), "not_joined", "history");
    ok(await req(alice, "channel:join", { channelId: "room" }), "join");
    refused(await req(alice, "message:send", { channelId: "room", clientMsgId: "", body: 1 }), "invalid", "empty clientMsgId");
    refused(await req(alice, "channel:history", { channelId: "room", limit: 0 }), "invalid", "limit 0");
    // too_large: 65,536 bytes of JSON is fine, one more is not and consumes no seq.
    const fits = "x".repeat(65_536 - 2);
    assert.equal(ok(await req(alice, "message:send", { channelId: "room", clientMsgId: "big1", body: fits }), "fits").seq, 1);
    refused(await req(alice, "message:send", { channelId: "room", clientMsgId: "big2", body: fits + "x" }), "too_large", "too large");
    assert.equal(ok(await req(alice, "message:send", { channelId: "room", clientMsgId: "small", body: 1 }), "after").seq, 2);
    // not_found.
    refused(await req(alice, "message:delete", { channelId: "room", messageId: "m0.0" }), "not_found", "unknown message");
    // rate_limited: the server under test allows a burst of 5 messages.
    const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => req(alice, "message:send", { channelId: "room", clientMsgId: `f${i}`, body: i })));
    assert.ok(burst.some((a) => !a.ok && a.error.code === "rate_limited"), JSON.stringify(burst));
    for (const a of burst.filter((a) => !a.ok)) refused(a, "rate_limited", "burst");
    // A request without an ack callback is processed; the connection keeps working.
    alice.emit("message:read", { channelId: "room", upTo: 1 });
    assert.deepEqual(await req(alice, "message:read", { channelId: "room", upTo: 1 }), { ok: true, upTo: 1 });
  },

  async jwt_auth() {
    // Tokens minted by the Rust test (lockstep_server::jwt::mint).
    const tokens = JSON.parse(process.env.LOCKSTEP_TEST_TOKENS);
    const carol = await connectWith(tokens.valid);
    const j = ok(await req(carol, "channel:join", { channelId: "private:carol" }), "own private channel");
    assert.deepEqual(j.members, ["carol"], "the user id is the token's sub");
    for (const name of ["expired", "wrongSecret", "dev"]) {
      await assert.rejects(connectWith(tokens[name]), (err) => err.message === "unauthorized", name);
    }
    // A session ends when its token expires: the server disconnects it
    // ("io server disconnect": socket.io-client does not retry by itself),
    // and the app reconnects with a fresh token from its auth callback.
    // Tokens are minted here, as a third-party issuer would, at the moment
    // of each connect: a token for 1 to 2 s (whole seconds), then one for
    // ten minutes.
    const secret = process.env.LOCKSTEP_TEST_SECRET;
    let lifetime = 2;
    let exp;
    const dave = io(url, {
      auth: (cb) => {
        exp = nowSecs() + lifetime;
        cb({ token: mintJwt(secret, "carol", exp) });
      },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    sockets.push(dave);
    const connected = () =>
      new Promise((resolve, reject) => {
        dave.once("connect", resolve);
        dave.once("connect_error", reject);
      });
    for (let attempt = 1; ; attempt++) {
      const done = connected();
      if (attempt > 1) dave.connect();
      try {
        await done;
        break;
      } catch (err) {
        // Only a machine too loaded to connect within the token's second
        // may see it expire first: then try again, a bounded number of times.
        assert.ok(err.message === "unauthorized" && nowSecs() >= exp && attempt < 10, `${err.message} (attempt ${attempt})`);
      }
    }
    let reason;
    dave.once("disconnect", (r) => (reason = r));
    await until("the expired session to be closed", () => reason !== undefined, 20_000);
    assert.equal(reason, "io server disconnect");
    assert.ok(nowSecs() >= exp, "closed before its token expired");
    lifetime = 600;
    const back = connected();
    dave.connect();
    await back;
    ok(await req(dave, "channel:join", { channelId: "private:carol" }), "reconnected with a fresh token");
  },

  async connection_cap() {
    // Started with --max-connections-per-user 2.
    const first = await connect("alice");
    await connect("alice");
    await assert.rejects(connect("alice"), (err) => err.message === "too_many_connections");
    await connect("bob");
    // Closing one frees its slot (released when the server sees the
    // disconnect: retried until then, bounded).
    first.disconnect();
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      try {
        await connect("alice");
        break;
      } catch (err) {
        assert.equal(err.message, "too_many_connections");
        if (Date.now() > deadline) throw new Error("the closed connection's slot was never freed");
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  },

  async store_failure_is_unavailable() {
    const alice = await connect("alice");
    refused(await req(alice, "channel:join", { channelId: "room" }), "unavailable", "store down");
    assert.ok(alice.connected, "the connection survives");
  },

  async slow_consumer_is_cut_off_and_recovers() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    ok(await req(alice, "channel:join", { channelId: "flood" }), "join");
    const pos = ok(await req(bob, "channel:join", { channelId: "flood" }), "bob join");
    let cut = false;
    bob.on("disconnect", () => (cut = true));
    // bob stops reading from its TCP socket: the server's buffers for it fill up.
    const tcp = bob.io.engine.transport.ws._socket;
    tcp.pause();
    const body = "x".repeat(60_000);
    const total = 300;
    let next = 1;
    const worker = async () => {
      while (next <= total) {
        const i = next++;
        ok(await req(alice, "message:send", { channelId: "flood", clientMsgId: `f${i}`, body: { i, body } }), `send ${i}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    tcp.resume();
    await until("the slow consumer to be cut off", () => cut);
    // What bob got before the cut is a gap-free prefix; the rest comes back on re-join.
    const seen = got(bob, "message:new").map((m) => m.seq);
    seen.forEach((seq, i) => assert.equal(seq, pos.headSeq + i + 1, "in order, no gap"));
    const since = seen.length ? seen[seen.length - 1] : pos.headSeq;
    const bob2 = await connect("bob");
    const back = ok(await req(bob2, "channel:join", { channelId: "flood", epoch: pos.epoch, since }), "re-join");
    // Hundreds of 60 KB messages weigh more than one reply may (1 MiB): the
    // re-join says so, and the client pages the gap with history.
    assert.equal(back.recovered, false, "a recovery past the reply's byte budget is cut");
    const missed = [];
    for (let after = since; ; ) {
      const page = ok(await req(bob2, "channel:history", { channelId: "flood", after, limit: 500 }), "page");
      assert.ok(page.events.length > 0, "a page makes progress");
      missed.push(...page.events.map((e) => e.seq));
      if (!page.more) break;
      after = page.events[page.events.length - 1].seq;
    }
    const all = [...seen, ...missed];
    assert.deepEqual(all, Array.from({ length: total }, (_, i) => i + 1), "every event delivered once, in order");
  },

  async flood_is_answered_or_cut_off_never_silent() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    ok(await req(bob, "channel:join", { channelId: "room" }), "join");
    let cut = false;
    alice.on("disconnect", () => (cut = true));
    const n = 3000;
    const results = await Promise.allSettled(
      Array.from({ length: n }, () => req(alice, "channel:leave", { channelId: "room" })),
    );
    const answered = results.filter((r) => r.status === "fulfilled");
    answered.forEach((r) => assert.deepEqual(r.value, { ok: true }));
    // Every request got its answer, or the flooding connection was cut off:
    // never a silent drop on a live connection.
    if (answered.length < n) assert.ok(cut, `${n - answered.length} requests unanswered on a live connection`);
    console.error(`flood: ${answered.length}/${n} answered, cut off: ${cut}`);
    ok(await req(bob, "message:send", { channelId: "room", clientMsgId: "after", body: 1 }), "others keep working");
  },

  async oversized_packet_closes_only_that_connection() {
    const alice = await connect("alice");
    const bob = await connect("bob");
    ok(await req(bob, "channel:join", { channelId: "room" }), "join");
    let closed = false;
    alice.once("disconnect", () => (closed = true));
    alice.emit("message:send", { channelId: "room", clientMsgId: "huge", body: "x".repeat(1_100_000) });
    await until("the oversized packet's connection to close", () => closed);
    ok(await req(bob, "message:send", { channelId: "room", clientMsgId: "still", body: "alive" }), "server keeps working");
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; known: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
try {
  await run();
  console.log(`ok ${scenario}`);
  for (const s of sockets) s.disconnect();
  process.exit(0);
} catch (err) {
  console.error(`FAILED ${scenario}: ${err.stack ?? err}`);
  process.exit(1);
}
