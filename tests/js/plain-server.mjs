// A plain Node socket.io@4.8 server speaking a small part of the lockstep
// contract (join, leave, send, message:new), in memory. The Rust Socket.IO
// transport is tested against it to show it interoperates with the
// reference implementation, not only with socketioxide.
//
//   node plain-server.mjs    prints "listening on <port>", serves until killed
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http);
const logs = new Map(); // channelId -> { head, byKey: Map }

io.use((socket, next) => {
  const token = socket.handshake.auth?.token ?? "";
  if (!token.startsWith("dev:")) return next(new Error("unauthorized"));
  socket.data.userId = token.slice(4);
  next();
});

io.on("connection", (socket) => {
  const userId = socket.data.userId;
  socket.emit("session", { userId, version: 1 });
  const log = (channelId) => {
    if (!logs.has(channelId)) logs.set(channelId, { head: 0, byKey: new Map() });
    return logs.get(channelId);
  };
  socket.on("channel:join", ({ channelId }, ack) => {
    socket.join(channelId);
    const members = [...new Set([...(io.sockets.adapter.rooms.get(channelId) ?? [])].map((id) => io.sockets.sockets.get(id)?.data.userId))].sort();
    ack({ ok: true, channelId, epoch: 1, headSeq: log(channelId).head, members, events: [], recovered: false });
  });
  socket.on("channel:leave", ({ channelId }, ack) => {
    socket.leave(channelId);
    ack({ ok: true });
  });
  socket.on("message:send", ({ channelId, clientMsgId, body }, ack) => {
    if (!socket.rooms.has(channelId)) return ack({ ok: false, error: { code: "not_joined", message: "join first", retryable: false } });
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

http.listen(0, "127.0.0.1", () => console.log(`listening on ${http.address().port}`));
