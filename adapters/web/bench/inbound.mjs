// Inbound throughput of the browser client under Node: in-order
// `message:new` events fed through the same entry point the socket.io
// transport uses (the transport's sink: each event's packet text, as the
// default transport's parser keeps it, into the wasm machine; batch out,
// each delivered packet parsed once and applied to the store). A bench,
// not a test.
//
//   node bench/inbound.mjs [events] [--parse | --objects]     (after scripts/build.mjs)
//
// `--parse` parses each packet as socket.io-client's default parser does
// and feeds the payload object (`sink.event`, what a custom transport
// delivers; the client encodes it to JSON text again): the same work from
// the same packet text, the way the client took events before issue 14.
// `--objects` feeds ready payload objects (the parse not counted: the
// bench as it was before issue 14).
import { cpus, loadavg } from "node:os";
import { createClient } from "../dist/index.js";

const args = process.argv.slice(2);
const objects = args.includes("--objects");
const parse = args.includes("--parse");
const N = Number(args.find((a) => !a.startsWith("--")) ?? 200_000);
let sink;
const emits = [];
const transport = (s) => {
  sink = s;
  return {
    open() {},
    connect() {},
    emit(generation, name, payload, ack) {
      emits.push({ name, ack });
    },
    close() {},
    closeAll() {},
    live: () => 0,
  };
};
const client = await createClient({
  url: "http://bench.invalid", token: "dev:reader", storage: null, timer: "main", transport, channels: ["bench"],
});
sink.opened(1, "dev:reader");
sink.event(1, "session", { userId: "reader", version: 1 });
// Events are handed to the machine once per task (a burst); let it run.
const tick = () => new Promise((resolve) => setImmediate(resolve));
await tick();
const join = emits.find((e) => e.name === "channel:join");
sink.ack(1, join.ack, { ok: true, channelId: "bench", epoch: 1, headSeq: 0, members: ["reader", "writer"], events: [], recovered: false });

const payload = (i) => ({
  channelId: "bench", seq: i + 1, messageId: `m1.${i + 1}`, authorId: "writer",
  clientMsgId: `w-${i + 1}`, body: { text: `message number ${i + 1}` }, ts: 1_700_000_000_000 + i,
});
const payloads = objects ? Array.from({ length: N }, (_, i) => payload(i)) : [];
const packets = objects ? [] : Array.from({ length: N }, (_, i) => JSON.stringify(["message:new", payload(i)]));
// Bursts of 64 events per task, as a socket delivers what one read brought.
const BURST = 64;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < N; i += BURST) {
  const end = Math.min(i + BURST, N);
  if (objects) {
    for (let j = i; j < end; j++) sink.event(1, "message:new", payloads[j]);
  } else if (parse) {
    for (let j = i; j < end; j++) {
      const [name, payload] = JSON.parse(packets[j]);
      sink.event(1, name, payload);
    }
  } else {
    for (let j = i; j < end; j++) sink.packet(1, packets[j]);
  }
  await tick();
}
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const cpuMs = (cpu.user + cpu.system) / 1000;
const ch = client.store.getSnapshot().channels.get("bench");
if (ch.lastSeq !== N || client.metrics().delivered !== N) {
  throw new Error(`delivered ${client.metrics().delivered} of ${N} (lastSeq ${ch.lastSeq})`);
}
await client.close();
const rate = (n, t) => Math.round(n / (t / 1000)).toLocaleString("en-US");
console.log(`${N} in-order inbound events (${objects ? "payload objects" : parse ? "packets parsed, then payload objects" : "packet texts"}) in ${ms.toFixed(0)} ms wall (${rate(N, ms)} events/s), `
  + `${cpuMs.toFixed(0)} ms CPU (${rate(N, cpuMs)} events per CPU-second)`);
console.log(`node ${process.version}, ${cpus()[0]?.model ?? "unknown cpu"}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
