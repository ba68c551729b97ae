// Load for the crash test (adapters/server/tests/crash.rs).
//
//   node crash.mjs load <url> <n> [hold]  sends c0..c<n-1> pipelined (window 32),
//                                     prints "ack <clientMsgId> <seq> <messageId>"
//                                     per ack, until done or disconnected; after
//                                     `hold` acks it starts no new send (those in
//                                     flight go on) and waits to be cut off, so
//                                     the kill always lands before the load ends
//   node crash.mjs verify <url> <n>   prints "history <json>" (the stored log),
//                                     resends all n with the same ids, prints
//                                     "acks <json>" and "after <json>"
import { io } from "socket.io-client";

const [mode, url, nArg, holdArg] = process.argv.slice(2);
const n = Number(nArg);
const hold = holdArg === undefined ? Infinity : Number(holdArg);
const CHANNEL = "crash";
const WINDOW = 32;

const s = io(url, { auth: { token: "dev:alice" }, transports: ["websocket"], reconnection: false });
await new Promise((resolve, reject) => {
  s.once("connect", resolve);
  s.once("connect_error", reject);
});
let gone = false;
s.on("disconnect", () => (gone = true));
const req = (event, payload) => s.timeout(10_000).emitWithAck(event, payload);

const join = await req("channel:join", { channelId: CHANNEL });
if (!join.ok) throw new Error(`join: ${JSON.stringify(join)}`);

/** Sends c0..c<n-1>, at most WINDOW in flight; calls onAck per ack. */
async function sendAll(onAck, holdAfter = Infinity) {
  let next = 0;
  let acked = 0;
  async function worker() {
    while (next < n && !gone) {
      if (acked >= holdAfter) {
        // Hold: the test kills the server now; wait for the cut.
        while (!gone) await new Promise((resolve) => setTimeout(resolve, 10));
        return;
      }
      const id = `c${next++}`;
      let ack;
      try {
        ack = await req("message:send", { channelId: CHANNEL, clientMsgId: id, body: id });
      } catch {
        return; // timed out or disconnected: the server is gone
      }
      if (!ack.ok) throw new Error(`send ${id}: ${JSON.stringify(ack)}`);
      acked++;
      onAck(id, ack);
    }
  }
  await Promise.all(Array.from({ length: WINDOW }, worker));
}

async function history() {
  const out = [];
  let after = 0;
  for (;;) {
    const page = await req("channel:history", { channelId: CHANNEL, after, limit: 500 });
    if (!page.ok) throw new Error(`history: ${JSON.stringify(page)}`);
    for (const e of page.events) out.push([e.clientMsgId, e.seq, e.messageId]);
    if (!page.more || page.events.length === 0) return out;
    after = page.events[page.events.length - 1].seq;
  }
}

if (mode === "load") {
  await sendAll((id, ack) => console.log(`ack ${id} ${ack.seq} ${ack.messageId}`), hold);
  console.log(gone ? "disconnected" : "done");
  process.exit(0);
} else if (mode === "verify") {
  console.log(`history ${JSON.stringify(await history())}`);
  const acks = [];
  await sendAll((id, ack) => acks.push([id, ack.seq, ack.messageId]));
  console.log(`acks ${JSON.stringify(acks)}`);
  console.log(`after ${JSON.stringify(await history())}`);
  s.disconnect();
  process.exit(0);
}
