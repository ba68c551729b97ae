// Shared set-up of the package's tests: the real lockstep-server (built by
// cargo), a TCP proxy that can cut and mute a client's connection, JWTs,
// and bounded waits on conditions (no sleeps).
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = join(here, "..", "..", "..");
const serverBin = join(repo, "target", "debug", "lockstep-server");

/** Waits until `pred()` is truthy (polled), or fails naming `what`. */
export async function until(what, pred, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await pred();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Starts `lockstep-server` on a free port; `args` adds flags (default
 * `--dev`), and the store is `--memory` unless they name `--postgres`.
 * Resolves with its URL, a `stop()` (SIGTERM) and a `kill()` (SIGKILL).
 */
export async function startServer(args = ["--dev"]) {
  if (!existsSync(serverBin)) {
    throw new Error(`${serverBin} is missing: run \`cargo build -p lockstep-server\` (scripts/test does)`);
  }
  const store = args.includes("--postgres") ? [] : ["--memory"];
  const child = spawn(serverBin, [...args, ...store, "--addr", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  const addr = await new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk) => {
      out += chunk;
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        child.stdout.off("data", onData);
        child.stdout.resume();
        resolve(m[1]);
      }
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", onData);
    child.once("exit", (code) => reject(new Error(`lockstep-server exited (${code}) before listening`)));
  });
  return {
    url: `http://${addr}`,
    port: Number(addr.split(":").pop()),
    async stop() {
      await end("SIGTERM");
    },
    async kill() {
      await end("SIGKILL");
    },
  };

  async function end(signal) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  }
}

/**
 * A TCP proxy to `port`: `cut()` drops every connection and refuses new
 * ones until `heal()`; `mute()` keeps connections up but drops what the
 * server sends (its acks never arrive) until `unmute()`; `retarget(p)`
 * sends new connections to port `p` (a load balancer moving off a dead
 * server).
 */
export async function startProxy(port) {
  const pairs = new Set();
  let target = port;
  let refusing = false;
  let muted = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, "127.0.0.1");
    const pair = { client, upstream };
    pairs.add(pair);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (!muted) client.write(d);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    connections: () => pairs.size,
    cut() {
      refusing = true;
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    heal() {
      refusing = false;
    },
    mute() {
      muted = true;
    },
    unmute() {
      muted = false;
    },
    retarget(p) {
      target = p;
    },
    async stop() {
      this.cut();
      await new Promise((r) => server.close(r));
    },
  };
}

/** An HS256 JWT for `sub`, valid for `ttlSecs`, as `lockstep-server --jwt-secret` checks it. */
export function jwt(secret, sub, ttlSecs) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + ttlSecs })}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

/** Counts Node's live timers and TCP sockets (what a leaked client would hold). */
export function handles() {
  const info = process.getActiveResourcesInfo();
  return {
    timers: info.filter((t) => t === "Timeout" || t === "Immediate").length,
    sockets: info.filter((t) => t === "TCPSocketWrap" || t === "TCPWrap").length,
  };
}

/** The stored messages of `channel` in a client's store, as `[seq, body]`. */
export function stored(client, channel) {
  const ch = client.store.getSnapshot().channels.get(channel);
  if (!ch) return [];
  return ch.items.filter((i) => i.kind === "message" && i.status === "sent" && i.messageId !== null)
    .map((i) => [i.seq, i.body]);
}

/** Options shared by the tests: quick retries, no IndexedDB unless given. */
export function options(url, extra = {}) {
  return {
    url,
    token: "dev:alice",
    storage: null,
    timer: "main",
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
    joinRetryDelay: 50,
    ...extra,
  };
}
