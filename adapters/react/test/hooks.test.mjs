// The React bindings in a DOM (happy-dom) against the real lockstep-server
// over real socket.io-client: the provider's client created on mount and
// closed on unmount, StrictMode's double mount, channels held by the hooks
// that use them, presence, typing and read receipts between two users, and
// the error boundary. Bounded waits on conditions, no sleeps.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Window } from "happy-dom";
import { StrictMode, createElement as h, useEffect } from "react";
import { createRoot } from "react-dom/client";

import { createClient } from "@lockstep/client";
import {
  LockstepErrorBoundary, LockstepProvider, useChannel, useConnection, usePresence, useReadReceipts, useTyping,
} from "../dist/index.js";
import { handles, options, startServer, until } from "../../web/test/helpers.mjs";

const window = new Window({ url: "http://127.0.0.1/" });
globalThis.window = window;
globalThis.document = window.document;
// Updates come from sockets, outside any act(): the tests wait on the DOM.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;

let server;
let baseline;
const roots = [];

before(async () => {
  baseline = handles();
  server = await startServer(["--dev", "--presence-grace-ms", "100"]);
});

after(async () => {
  for (const r of roots) r.unmount();
  await server?.stop();
  await window.happyDOM.close();
});

/** A `create` for the provider that remembers every client it made. */
function recorder() {
  const made = [];
  const create = async (o) => {
    const c = await createClient(o);
    made.push(c);
    return c;
  };
  return { made, create };
}

/** Mounts `element` in a fresh container; `text()` reads it, `render(el)` re-renders, `unmount()`. */
function mount(element) {
  const container = document.createElement("div");
  document.body.appendChild(container);
  // What the boundaries catch is asserted by the tests, not logged.
  const root = createRoot(container, { onCaughtError: () => {} });
  root.render(element);
  const handle = {
    container,
    text: () => container.textContent,
    render: (el) => root.render(el),
    unmount: () => {
      if (handle.gone) return;
      handle.gone = true;
      root.unmount();
      container.remove();
    },
    gone: false,
  };
  roots.push(handle);
  return handle;
}

async function metric(series) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(text.split("\n").find((l) => l.startsWith(`${series} `))?.split(" ")[1] ?? 0);
}

const leaves = () => metric('lockstep_replies_total{kind="leave",outcome="ok"}');
const accepted = () => metric('lockstep_handshakes_total{outcome="accepted"}');

function Status() {
  const { state, userId } = useConnection();
  return h("p", { className: "status" }, `${state.name} ${userId ?? "-"};`);
}

/** A channel's status, messages and members; `api[id]` gets its view at each render. */
const api = {};
function Channel({ id }) {
  const view = useChannel(id);
  api[id] = view;
  return h("p", null, `${id}:${view.status}:${view.messages.map((m) => m.body).join(",")};`);
}

function leakFree(client) {
  const i = client.inspect();
  return i.sockets === 0 && i.timers === 0 && i.pageListeners === 0 && i.storeListeners === 0;
}

test("the provider creates one client on mount and closes it on unmount, leaving nothing running", async () => {
  const { made, create } = recorder();
  const app = mount(h(LockstepProvider, { options: options(server.url, { token: "dev:alice" }), create },
    h(Status), h(Channel, { id: "h1" })));
  await until("connected and subscribed", () => app.text().includes("connected alice;") && app.text().includes("h1:subscribed:"));
  assert.equal(made.length, 1);
  const client = made[0];
  assert.equal(client.inspect().sockets, 1);
  assert.ok(client.inspect().storeListeners >= 1, "the hooks listen to the store");

  api.h1.send("hello");
  await until("the message shown", () => app.text().includes("h1:subscribed:hello;"));

  app.unmount();
  await until("the client closed", () => client.state.name === "closed" || leakFree(client));
  await until("nothing left running", () => leakFree(client));
  assert.throws(() => client.send("h1", "late"), (e) => e.kind === "closed");
});

test("under StrictMode the first client never connects and only one connection is made", async () => {
  const { made, create } = recorder();
  const handshakes = await accepted();
  const leavesBefore = await leaves();
  const app = mount(h(StrictMode, null, h(LockstepProvider, { options: options(server.url, { token: "dev:alice" }), create },
    h(Status), h(Channel, { id: "h2" }))));
  await until("connected and subscribed", () => app.text().includes("connected alice;") && app.text().includes("h2:subscribed:"));
  // StrictMode mounted, unmounted and mounted the provider's effect.
  assert.equal(made.length, 2);
  await until("the first client closed", () => leakFree(made[0]));
  assert.equal(made[0].metrics().connectAttempts, 0, "the first client never tried to connect");
  assert.equal(made[1].metrics().connectAttempts, 1);
  // The channel hook's double effect did not leave and re-join.
  assert.equal(made[1].metrics().subscriptionsSucceeded, 1);
  await until("one handshake", async () => (await accepted()) === handshakes + 1);
  assert.equal(await leaves(), leavesBefore);

  app.unmount();
  await until("nothing left running", () => made.every(leakFree));
  assert.equal(await accepted(), handshakes + 1, "no second connection");
});

test("a channel is held while a component uses it: subscribed on mount, left after the last unmount", async () => {
  const { made, create } = recorder();
  const opts = options(server.url, { token: "dev:carol" });
  const tree = (...ids) => h(LockstepProvider, { options: opts, create }, ...ids.map((id, i) => h(Channel, { id, key: `${id}${i}` })));
  // Bob watches the channel's presence from another client.
  const bob = await createClient(options(server.url, { token: "dev:bob", channels: ["h3"] }));
  try {
    const members = () => bob.store.getSnapshot().channels.get("h3")?.members ?? [];
    const app = mount(tree("h3", "h3"));
    await until("carol subscribed", () => app.text() === "h3:subscribed:;h3:subscribed:;");
    await until("bob sees carol", () => members().includes("carol"));
    const client = made[0];
    const leavesBefore = await leaves();

    app.render(tree("h3"));
    await until("one holder left", () => app.text() === "h3:subscribed:;");
    assert.equal(client.store.getSnapshot().channels.get("h3")?.subscription.status, "subscribed", "still held by the other");

    app.render(tree());
    await until("left after the last holder unmounted", () => !client.store.getSnapshot().channels.has("h3"));
    await until("the server served the leave", async () => (await leaves()) === leavesBefore + 1);
    await until("bob sees carol leave after the grace", () => !members().includes("carol"));
    assert.equal(client.state.name, "connected", "the connection stays");
    app.unmount();
    await until("nothing left running", () => leakFree(client));
  } finally {
    await bob.close();
  }
});

test("presence, typing and read receipts between two users, live", async () => {
  const views = {};
  function Room({ who }) {
    const channel = useChannel("h4");
    const members = usePresence("h4");
    const typing = useTyping("h4");
    const { seenBy } = useReadReceipts("h4");
    views[who] = channel;
    const last = channel.messages.at(-1);
    return h("p", null,
      `members=${members.join(",")};typing=${typing.join(",")};`
      + `messages=${channel.messages.map((m) => `${m.body}/${m.status}`).join(",")};`
      + `seen=${last?.seq == null ? "" : seenBy(last.seq).join(",")};`);
  }
  const alice = recorder();
  const bob = recorder();
  const a = mount(h(LockstepProvider, { options: options(server.url, { token: "dev:alice" }), create: alice.create }, h(Room, { who: "alice" })));
  const b = mount(h(LockstepProvider, { options: options(server.url, { token: "dev:bob" }), create: bob.create }, h(Room, { who: "bob" })));
  await until("each sees the other", () => a.text().includes("members=alice,bob;") && b.text().includes("members=alice,bob;"));

  views.alice.setTyping(true);
  await until("bob sees alice typing", () => b.text().includes("typing=alice;"));
  assert.ok(a.text().includes("typing=;"), "one never sees oneself typing");

  const handle = views.alice.send("hi bob");
  assert.match(a.text() + JSON.stringify(alice.made[0].store.getSnapshot().channels.get("h4").items.map((i) => i.status)), /pending|sent/);
  assert.equal((await handle.outcome).status, "sent");
  await until("bob has it", () => b.text().includes("messages=hi bob/sent;"));
  await until("alice's stopped typing", () => b.text().includes("typing=;"));

  views.bob.markRead();
  await until("alice sees bob read it", () => a.text().includes("seen=bob;"));

  b.unmount();
  await until("alice sees bob leave", () => a.text().includes("members=alice;"));
  a.unmount();
  await until("nothing left running", () => [...alice.made, ...bob.made].every(leakFree));
});

test("the error boundary catches a refused subscription and a command refused at once; reset tries again", async () => {
  const { made, create } = recorder();
  const caught = [];
  let reset;
  function Private() {
    const view = useChannel("private:bob", { throwOnError: true });
    return h("p", null, `private:${view.status};`);
  }
  let sendBad;
  function Open() {
    const view = useChannel("h5", { throwOnError: true });
    sendBad = () => view.send(undefined);
    return h("p", null, `open:${view.status};`);
  }
  function Inline() {
    // Without throwOnError the refusal is state, not an exception.
    const view = useChannel("private:dave");
    return h("p", null, `inline:${view.status}:${view.code ?? ""};`);
  }
  const boundary = (child) => h(LockstepErrorBoundary, {
    onError: (e) => caught.push(e),
    fallback: ({ error, reset: r }) => {
      reset = r;
      return h("p", null, `caught:${error.kind}:${error.message};`);
    },
  }, child);
  const app = mount(h(LockstepProvider, { options: options(server.url, { token: "dev:erin" }), create },
    boundary(h(Private)), boundary(h(Open)), h(Inline)));
  await until("the refusal caught", () => app.text().includes("caught:subscription_failed:joining private:bob was refused: forbidden;"));
  await until("the inline refusal shown", () => app.text().includes("inline:failed:forbidden;"));
  await until("the open channel subscribed", () => app.text().includes("open:subscribed;"));
  assert.equal(caught.length, 1);

  // Reset mounts the child again: it joins again (and is refused again).
  const joinsRefused = () => metric('lockstep_replies_total{kind="join",outcome="forbidden"}');
  const refusedBefore = await joinsRefused();
  reset();
  await until("tried again and caught again", () => caught.length === 2);
  assert.ok(await joinsRefused() > refusedBefore, "the join was sent again");

  // A command refused at once (a body that is not JSON) goes to the boundary too.
  sendBad();
  await until("the command refusal caught", () => app.text().includes("caught:invalid:the body must be a JSON value;"));
  app.unmount();
  await until("nothing left running", () => made.every(leakFree));
});

test("every client of these tests is closed: no timer or socket outlives them", async () => {
  for (const r of roots) r.unmount();
  await until("no timers or sockets beyond the baseline", () => {
    const now = handles();
    return now.timers <= baseline.timers && now.sockets <= baseline.sockets;
  });
});
