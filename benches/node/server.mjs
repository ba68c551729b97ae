// A plain Node socket.io@4.8 chat server written the usual way: rooms,
// acks, everything in memory, a seq counter per channel, idempotent sends
// by clientMsgId. It speaks the part of the lockstep contract the load
// generator uses (docs/PROTOCOL.md §1): auth { token: "dev:<user>" },
// `session`, `channel:join`, `channel:leave`, `message:send` with acks,
// `message:new` to the room. The baseline of docs/BENCHMARKS.md,
// "End-to-end load comparison".
//
//   PORT=3100 node server.mjs    prints "listening on <port>", serves until killed
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http);
const logs = new Map(); // channelId -> { head, byKey: Map }

const log = (channelId) => {
  let l = logs.get(channelId);
  if (!l) {
    l = { head: 0, byKey: new Map() };
    logs.set(channelId, l);
  }
  return l;
};

io.use((socket, next) => {
  const token = socket.handshake.auth?.token ?? "";
  if (!token.startsWith("dev:")) return next(new Error("unauthorized"));
  socket.data.userId = token.slice(4);
  next();
});

io.on("connection", (socket) => {
  const userId = socket.data.userId;
  socket.emit("session", { userId, version: 1 });
  socket.on("channel:join", ({ channelId } = {}, ack) => {
    if (typeof ack !== "function" || typeof channelId !== "string") return;
    socket.join(channelId);
    const ids = io.sockets.adapter.rooms.get(channelId) ?? new Set();
    const members = [...new Set([...ids].map((id) => io.sockets.sockets.get(id)?.data.userId))].sort();
    ack({ ok: true, channelId, epoch: 1, headSeq: log(channelId).head, members, events: [], recovered: false });
  });
  socket.on("channel:leave", ({ channelId } = {}, ack) => {
    socket.leave(channelId);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("message:send", ({ channelId, clientMsgId, body } = {}, ack) => {
    if (typeof ack !== "function") return;
    if (!socket.rooms.has(channelId)) {
      return ack({ ok: false, error: { code: "not_joined", message: "join first", retryable: false } });
    }
    const l = log(channelId);
    const key = `${userId}/${clientMsgId}`;
    const known = l.byKey.get(key);
    if (known) return ack({ ok: true, ...known });
    const stored = { messageId: `m1.${l.head + 1}`, seq: ++l.head, ts: Date.now() };
    l.byKey.set(key, stored);
    ack({ ok: true, ...stored });
    io.to(channelId).emit("message:new", { channelId, seq: stored.seq, messageId: stored.messageId, authorId: userId, clientMsgId, body, ts: stored.ts });
  });
});

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => console.log(`listening on ${http.address().port}`));
