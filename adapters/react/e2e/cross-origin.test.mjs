// A page on another origin, as a new user tries it: served from another
// port (as a Vite dev server would serve it), with the server README's
// snippet, `io(url, { auth: { token } })`, so socket.io-client's default
// transports (long-polling first, then the upgrade to WebSocket). Under
// `--dev` the server allows loopback origins by default; without `--dev`
// and without `--cors-origins`, the same page is refused by CORS.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { artifacts, launch, startServer } from "./helpers.mjs";

/** socket.io-client's browser build, as @lockstep/client installs it. */
const clientBundle = join(fileURLToPath(new URL(".", import.meta.url)),
  "..", "..", "web", "node_modules", "socket.io-client", "dist", "socket.io.min.js");

let browser;
let page;
let pageUrl;
let stopPages;

/** The page: plain socket.io-client from a script tag, the README's snippet, a join. */
const html = `<!doctype html><meta charset="utf-8"><title>another origin</title>
<script src="/socket.io.min.js"></script>
<p id="out">starting</p>
<script>
  const params = new URLSearchParams(location.search);
  const out = (text) => { document.getElementById("out").textContent = text; };
  window.result = { transports: [] };
  const socket = io(params.get("server"), { auth: { token: "dev:carol" }, reconnection: false });
  socket.io.on("open", () => {
    window.result.transports.push(socket.io.engine.transport.name);
    socket.io.engine.on("upgrade", (t) => { window.result.upgraded = t.name; });
  });
  socket.on("connect_error", (e) => { window.result.error = e.message; out("connect_error: " + e.message); });
  socket.on("connect", () => {
    socket.emit("channel:join", { channelId: "cross" }, (reply) => {
      window.result.join = reply;
      out("joined: " + JSON.stringify(reply.ok));
    });
  });
</script>`;

before(async () => {
  // The page's own origin: another port on this machine.
  const pages = createServer((req, res) => {
    if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(readFileSync(clientBundle));
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(html);
    }
  });
  await new Promise((r) => pages.listen(0, "127.0.0.1", r));
  pageUrl = `http://127.0.0.1:${pages.address().port}/`;
  stopPages = () => new Promise((r) => pages.close(r));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stopPages?.();
});

async function visit(server) {
  const context = await browser.newContext();
  page = await context.newPage();
  await page.goto(`${pageUrl}?server=${encodeURIComponent(server.url)}`);
  return page;
}

test("a page from another origin joins over long-polling first with lockstep-server --dev, no CORS flag", async () => {
  const server = await startServer(["--dev"]);
  try {
    const p = await visit(server);
    await p.waitForFunction(() => window.result.join !== undefined || window.result.error !== undefined, null, { timeout: 15_000 });
    const result = await p.evaluate(() => window.result);
    assert.equal(result.error, undefined, `connect_error: ${result.error}`);
    assert.equal(result.join.ok, true, JSON.stringify(result.join));
    assert.deepEqual(result.transports, ["polling"], "socket.io-client's default: opened over long-polling");
    // Then upgraded to WebSocket, as socket.io-client does by default.
    await p.waitForFunction(() => window.result.upgraded === "websocket", null, { timeout: 15_000 });
    await p.screenshot({ path: join(artifacts, "6-cross-origin-dev.png") });
    await p.context().close();
  } finally {
    await server.stop();
  }
});

test("without --dev, a page from another origin is refused by CORS until --cors-origins names it", async () => {
  const secret = "cross-origin-secret-0123456789abcdef";
  const closed = await startServer(["--jwt-secret", secret]);
  try {
    const p = await visit(closed);
    await p.waitForFunction(() => window.result.error !== undefined || window.result.join !== undefined, null, { timeout: 15_000 });
    assert.equal(await p.evaluate(() => window.result.error), "xhr poll error");
    await p.context().close();
  } finally {
    await closed.stop();
  }
  // Named, the same origin is allowed (the token is still checked: refused as unauthorized, not by CORS).
  const named = await startServer(["--jwt-secret", secret, "--cors-origins", pageUrl.replace(/\/$/, "")]);
  try {
    const p = await visit(named);
    await p.waitForFunction(() => window.result.error !== undefined || window.result.join !== undefined, null, { timeout: 15_000 });
    assert.equal(await p.evaluate(() => window.result.error), "unauthorized", "past CORS, the dev token is refused by JWT auth");
    await p.context().close();
  } finally {
    await named.stop();
  }
});
