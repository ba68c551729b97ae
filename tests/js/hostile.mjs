// A hostile user with a valid token, for adapters/server/tests/hostile.rs and
// benches/hostile/run.sh. Each mode prints one JSON line (`result {...}`).
//
//   node hostile.mjs store <url> <n>        as mallory: stores n bodies of about
//                                           62 KB built to be cheap on the wire and
//                                           dear as a parsed tree ([0,0,0,...])
//   node hostile.mjs replies <url> <conns>  as mallory, on <conns> connections at
//                                           once: 20 joins from seq 0 and 20 history
//                                           reads from seq 0 each, all pipelined;
//                                           every request must be answered
//   node hostile.mjs flood <url> <seconds>  as mallory: keeps 64 history reads of
//                                           the heavy channel in flight until the
//                                           time is up (or it is killed)
//   node hostile.mjs oversize <url> <n>     as mallory: n sends of a 960 KB body
//                                           ([0,0,...], under the packet limit, over
//                                           the body limit), 16 in flight: each is
//                                           refused too_large
//   node hostile.mjs bystander <url> <n>    as bob, in another channel: n sends one
//                                           at a time; prints the ack latencies
import { io } from "socket.io-client";

const [mode, url, arg] = process.argv.slice(2);
const CHANNEL = "heavy";
const TIMEOUT_MS = 120_000;

async function connect(user) {
  const s = io(url, {
    auth: { token: `dev:${user}` },
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
  });
  await new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", reject);
  });
  return s;
}

const req = (s, event, payload) => s.timeout(TIMEOUT_MS).emitWithAck(event, payload);

function ok(reply, what) {
  if (!reply || reply.ok !== true) throw new Error(`${what}: ${JSON.stringify(reply)}`);
  return reply;
}

const result = (value) => console.log(`result ${JSON.stringify(value)}`);

if (mode === "store") {
  const n = Number(arg);
  const s = await connect("mallory");
  ok(await req(s, "channel:join", { channelId: CHANNEL }), "join");
  // About 62 KB of text, a 31,000-element array as a tree.
  const body = new Array(31_000).fill(0);
  let next = 0;
  let stored = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      for (;;) {
        const r = await req(s, "message:send", { channelId: CHANNEL, clientMsgId: `h${i}`, body });
        if (r.ok) break;
        if (!r.error?.retryable) throw new Error(`send ${i}: ${JSON.stringify(r)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      stored++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  result({ stored });
  s.close();
} else if (mode === "replies") {
  const conns = Number(arg);
  const sockets = await Promise.all(Array.from({ length: conns }, () => connect("mallory")));
  const head = ok(await req(sockets[0], "channel:join", { channelId: CHANNEL }), "first join");
  let answered = 0;
  let cut = 0;
  let recovered = 0;
  let replyEvents = 0;
  const asks = [];
  for (const s of sockets) {
    for (let i = 0; i < 20; i++) {
      asks.push(
        req(s, "channel:join", { channelId: CHANNEL, epoch: head.epoch, since: 0 }).then((r) => {
          ok(r, "join from 0");
          answered++;
          replyEvents += r.events.length;
          if (r.recovered) recovered++;
          else cut++;
        }),
      );
      asks.push(
        req(s, "channel:history", { channelId: CHANNEL, after: 0, limit: 500 }).then((r) => {
          ok(r, "history from 0");
          answered++;
          replyEvents += r.events.length;
          if (r.more) cut++;
        }),
      );
    }
  }
  await Promise.all(asks);
  result({ asked: asks.length, answered, cut, recovered, replyEvents, head: head.headSeq });
  for (const s of sockets) s.close();
} else if (mode === "flood") {
  const seconds = Number(arg);
  const s = await connect("mallory");
  ok(await req(s, "channel:join", { channelId: CHANNEL }), "join");
  const until = Date.now() + seconds * 1_000;
  let answered = 0;
  let refused = 0;
  const worker = async () => {
    while (Date.now() < until) {
      const r = await req(s, "channel:history", { channelId: CHANNEL, after: 0, limit: 500 });
      if (r.ok) answered++;
      else refused++;
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  result({ answered, refused });
  s.close();
  process.exit(0);
} else if (mode === "oversize") {
  const n = Number(arg);
  const s = await connect("mallory");
  ok(await req(s, "channel:join", { channelId: CHANNEL }), "join");
  const body = new Array(480_000).fill(0);
  let next = 0;
  let tooLarge = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const r = await req(s, "message:send", { channelId: CHANNEL, clientMsgId: `o${i}`, body });
      if (!r.ok && r.error.code === "too_large") tooLarge++;
      else throw new Error(`oversize ${i}: ${JSON.stringify(r)}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  result({ n, tooLarge });
  s.close();
} else if (mode === "bystander") {
  const n = Number(arg);
  const s = await connect("bob");
  ok(await req(s, "channel:join", { channelId: "quiet" }), "join");
  const latencies = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    ok(await req(s, "message:send", { channelId: "quiet", clientMsgId: `b${Date.now()}-${i}`, body: "hi" }), "send");
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  result({ n, p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99), max_ms: latencies[latencies.length - 1] });
  s.close();
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
