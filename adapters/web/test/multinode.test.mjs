// The package against two lockstep-server processes sharing one
// PostgreSQL (issue 17): members on both processes, sending under load;
// mid-load one process is killed with SIGKILL and its members' load
// balancer (a TCP proxy) moves them to the other. Every send resolves
// `sent` exactly once at a seq of its own, and every member, on either
// process, holds the whole log once, in seq order, with each message at
// its acknowledged seq and no entry shown twice.
//
// Needs LOCKSTEP_TEST_POSTGRES_URL (`scripts/postgres start DIR` prints
// it; scripts/test starts one). Without it the test is reported skipped,
// unless CI or LOCKSTEP_REQUIRE_POSTGRES is set: then it fails.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { createClient } from "../dist/index.js";
import { options, startProxy, startServer, stored, until } from "./helpers.mjs";

const pg = process.env.LOCKSTEP_TEST_POSTGRES_URL || null;
const required = Boolean(process.env.CI || process.env.LOCKSTEP_REQUIRE_POSTGRES);
const ROOM = "room";
/** Messages each member sends, and how many it keeps in flight. */
const PER_MEMBER = 100;
const WINDOW = 8;
/** Process A is killed at this many acknowledged sends (of all members). */
const KILL_AFTER = 120;
const LONG = 60_000;

const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function server(schema, node) {
  const s = await startServer([
    "--dev",
    "--postgres", pg,
    "--postgres-schema", schema,
    "--node-id", String(node),
    "--postgres-resync-ms", "1000",
    "--messages-per-sec", "1000000",
    "--messages-burst", "1000000",
  ]);
  cleanup.push(() => s.kill());
  return s;
}

/** Sends `PER_MEMBER` messages keeping `WINDOW` in flight; `onAck` per ack. */
async function load(client, user, onAck) {
  const outcomes = new Map();
  let next = 0;
  async function worker() {
    while (next < PER_MEMBER) {
      const body = `${user}-${next++}`;
      const outcome = await client.send(ROOM, body).outcome;
      outcomes.set(body, outcome);
      onAck();
    }
  }
  await Promise.all(Array.from({ length: WINDOW }, worker));
  return outcomes;
}

test(
  "two processes on PostgreSQL: a SIGKILL mid-load loses nothing, duplicates nothing, keeps order",
  { skip: !pg && !required ? "LOCKSTEP_TEST_POSTGRES_URL is not set" : false },
  async () => {
    assert.ok(pg, "LOCKSTEP_TEST_POSTGRES_URL is required here (CI or LOCKSTEP_REQUIRE_POSTGRES is set)");
    const schema = `lockstep_web_${process.pid}_${Date.now()}`;
    const a = await server(schema, 31);
    const b = await server(schema, 32);
    // A load balancer in front of A; it moves to B when A dies.
    const lb = await startProxy(a.port);
    cleanup.push(() => lb.stop());
    const members = [
      ["alice", lb.url],
      ["bob", b.url],
      ["carol", lb.url],
      ["dave", b.url],
    ];
    const clients = [];
    for (const [user, url] of members) {
      const c = await createClient(options(url, { token: `dev:${user}`, channels: [ROOM] }));
      cleanup.push(() => c.close());
      clients.push([user, c]);
    }
    for (const [user, c] of clients) {
      await until(`${user} subscribed`, () => c.store.getSnapshot().channels.get(ROOM)?.subscription.status === "subscribed", LONG);
    }

    let acked = 0;
    let killedAt = null;
    const onAck = () => {
      acked++;
      if (acked === KILL_AFTER) {
        killedAt = acked;
        lb.retarget(b.port);
        void a.kill();
      }
    };
    const results = await Promise.all(clients.map(([user, c]) => load(c, user, onAck)));
    const total = PER_MEMBER * members.length;
    assert.ok(killedAt !== null && killedAt < total, `the kill landed mid-load (at ${killedAt} of ${total})`);

    // Every send: sent, once, at a seq no other send has.
    const seqOf = new Map();
    for (const outcomes of results) {
      assert.equal(outcomes.size, PER_MEMBER);
      for (const [body, outcome] of outcomes) {
        assert.equal(outcome.status, "sent", `${body}: ${JSON.stringify(outcome)}`);
        assert.ok(!seqOf.has(body));
        seqOf.set(body, outcome.seq);
      }
    }
    assert.equal(new Set(seqOf.values()).size, total, "two sends acknowledged at one seq");

    // Every member, on either process, holds 1..=total once, in order,
    // each message at its acknowledged seq, and nothing shown twice.
    const want = Array.from({ length: total }, (_, i) => i + 1);
    for (const [user, c] of clients) {
      await until(`${user} has all ${total}`, () => stored(c, ROOM).length >= total, LONG);
      const log = stored(c, ROOM);
      assert.deepEqual(log.map(([seq]) => seq), want, `${user}: not in order exactly once`);
      for (const [seq, body] of log) assert.equal(seqOf.get(body), seq, `${user}: ${body} at ${seq}`);
      assert.equal(c.store.getSnapshot().channels.get(ROOM).items.length, total, `${user}: an entry shown twice`);
    }
    const moved = clients.filter(([user]) => user === "alice" || user === "carol");
    for (const [user, c] of moved) assert.ok(c.metrics().reconnects >= 1, `${user} never moved`);
  },
);
