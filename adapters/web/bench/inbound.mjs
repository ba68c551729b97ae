// Inbound throughput of the browser client under Node: in-order
// `message:new` events fed through the same entry point the socket.io
// transport uses (the transport's sink: payload object in, JSON text into
// the wasm machine, batch out, applied to the store). A bench, not a test.
//
//   node bench/inbound.mjs [events]      (after scripts/build.mjs)
import { cpus, loadavg } from "node:os";
import { createClient } from "../dist/index.js";

const N = Number(process.argv[2] ?? 200_000);
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

const payloads = Array.from({ length: N }, (_, i) => ({
  channelId: "bench", seq: i + 1, messageId: `m1.${i + 1}`, authorId: "writer",
  clientMsgId: `w-${i + 1}`, body: { text: `message number ${i + 1}` }, ts: 1_700_000_000_000 + i,
}));
// Bursts of 64 events per task, as a socket delivers what one read brought.
const BURST = 64;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < N; i += BURST) {
  for (const p of payloads.slice(i, i + BURST)) sink.event(1, "message:new", p);
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
console.log(`${N} in-order inbound events in ${ms.toFixed(0)} ms wall (${rate(N, ms)} events/s), `
  + `${cpuMs.toFixed(0)} ms CPU (${rate(N, cpuMs)} events per CPU-second)`);
console.log(`node ${process.version}, ${cpus()[0]?.model ?? "unknown cpu"}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
