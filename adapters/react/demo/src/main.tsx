// The demo chat page: @lockstep/client and @lockstep/react in a small app.
// Sign in as any user name (the server runs with --dev: `dev:<name>`
// tokens), pick channels, and watch members come and go, typing, read
// receipts, each message's pending/sent/failed state, the connection, and
// what happens offline (messages wait in an outbox that survives a reload).
//
// URL parameters (for tests and for trying things): `user` signs in at once,
// `server` connects to another address (e.g. through a proxy), `channel`
// opens that channel first.
import { StrictMode, useEffect, useMemo, useRef, useState, type FormEvent, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { type ClientOptions, type MessageItem, type TimelineItem, createClient } from "@lockstep/client";
import {
  LockstepErrorBoundary, LockstepProvider, useChannel, useConnection, useLockstep, usePresence, useReadReceipts, useTyping,
} from "@lockstep/react";

const params = new URLSearchParams(location.search);
const SERVER = params.get("server") ?? location.origin;
const USER_RE = /^[A-Za-z0-9_-]{1,64}$/;
const CHANNEL_RE = /^[A-Za-z0-9_:.-]{1,128}$/;
const DEFAULT_CHANNELS = ["general", "random"];

/** The client's WebAssembly module, fetched and compiled once for the page (StrictMode creates two clients). */
const wasm = WebAssembly.compileStreaming(fetch(new URL("lockstep.wasm", document.baseURI)));
/** The provider's `create`: stable, so the provider never starts over by itself. */
const create = async (options: ClientOptions) => createClient({ ...options, wasm: await wasm });

function App(): ReactNode {
  const [user, setUser] = useState<string | null>(() => {
    const given = params.get("user") ?? localStorage.getItem("lockstep-demo-user");
    return given !== null && USER_RE.test(given) ? given : null;
  });
  const signIn = (name: string) => {
    localStorage.setItem("lockstep-demo-user", name);
    setUser(name);
  };
  const signOut = () => {
    localStorage.removeItem("lockstep-demo-user");
    setUser(null);
  };
  if (user === null) return <SignIn onSignIn={signIn} />;
  const options: ClientOptions = {
    url: SERVER,
    token: `dev:${user}`,
    // One outbox per user: what alice queued offline is never sent as bob.
    storageKey: `user:${user}`,
    metricsInterval: Number(params.get("metricsInterval") ?? 10_000),
  };
  // A new key: a new client for another user.
  return (
    <LockstepProvider key={user} options={options} create={create}>
      <Chat user={user} onSignOut={signOut} />
    </LockstepProvider>
  );
}

function SignIn({ onSignIn }: { onSignIn: (name: string) => void }): ReactNode {
  const [name, setName] = useState("");
  const valid = USER_RE.test(name);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (valid) onSignIn(name);
  };
  return (
    <form className="signin" onSubmit={submit}>
      <h1>lockstep demo chat</h1>
      <p>Sign in as any name (dev tokens: anyone can be anyone). Open a second tab as someone else to chat.</p>
      <input data-testid="user" autoFocus placeholder="your name, e.g. alice" value={name}
        onChange={(e) => setName(e.target.value.trim())} />
      <button data-testid="signin" disabled={!valid}>Sign in</button>
      {name !== "" && !valid && <p className="hint">Letters, digits, _ and - only (at most 64).</p>}
    </form>
  );
}

function Chat({ user, onSignOut }: { user: string; onSignOut: () => void }): ReactNode {
  const [channels, setChannels] = useState<string[]>(() => {
    const first = params.get("channel");
    return first !== null && CHANNEL_RE.test(first) && !DEFAULT_CHANNELS.includes(first)
      ? [first, ...DEFAULT_CHANNELS] : DEFAULT_CHANNELS;
  });
  const [current, setCurrent] = useState(channels[0] ?? "general");
  const [adding, setAdding] = useState("");
  const add = (e: FormEvent) => {
    e.preventDefault();
    if (!CHANNEL_RE.test(adding)) return;
    if (!channels.includes(adding)) setChannels([...channels, adding]);
    setCurrent(adding);
    setAdding("");
  };
  const leave = (id: string) => {
    const rest = channels.filter((c) => c !== id);
    setChannels(rest);
    if (current === id) setCurrent(rest[0] ?? "");
  };
  return (
    <div className="chat">
      <header>
        <strong>lockstep</strong>
        <span data-testid="me">{user}</span>
        <ConnectionBadge />
        <button onClick={onSignOut}>Sign out</button>
      </header>
      <OfflineBanner />
      <nav>
        <h2>Channels</h2>
        <ul>
          {channels.map((id) => (
            <ChannelEntry key={id} id={id} selected={id === current} onSelect={() => setCurrent(id)} onLeave={() => leave(id)} />
          ))}
        </ul>
        <form onSubmit={add}>
          <input data-testid="new-channel" placeholder="join a channel" value={adding} onChange={(e) => setAdding(e.target.value.trim())} />
        </form>
      </nav>
      <main>
        {current !== "" && (
          <LockstepErrorBoundary key={current} fallback={({ error, reset }) => (
            <div className="refused" data-testid="refused">
              <p>{error.message}</p>
              <button onClick={reset}>Try again</button>
            </div>
          )}>
            <ChannelPane id={current} />
          </LockstepErrorBoundary>
        )}
      </main>
    </div>
  );
}

function ConnectionBadge(): ReactNode {
  const { state, error } = useConnection();
  const [now, setNow] = useState(() => performance.now());
  const retryAt = state.name === "reconnecting" || state.name === "suspended" ? state.retryAt : null;
  useEffect(() => {
    if (retryAt === null) return undefined;
    const t = setInterval(() => setNow(performance.now()), 500);
    return () => clearInterval(t);
  }, [retryAt]);
  const detail = error !== null ? `: ${error.message}`
    : state.name === "failed" ? `: ${state.reason}`
      : retryAt !== null ? ` (retrying in ${Math.max(0, Math.ceil((retryAt - now) / 1000))} s)` : "";
  return <span className={`badge ${state.name}`} data-testid="connection" data-state={state.name}>{state.name}{detail}</span>;
}

/** Shown while not connected: what waits in the outbox, and that it will go out. */
function OfflineBanner(): ReactNode {
  const { client } = useLockstep();
  const { state } = useConnection();
  const pending = usePending();
  if (client === null || state.name === "connected") return null;
  return (
    <div className="offline" data-testid="offline">
      {state.name === "failed" ? "Not connected." : "Offline: reconnecting."}{" "}
      {pending > 0 && `${pending} message${pending === 1 ? "" : "s"} waiting to be sent; they go out once the connection is back (and survive a reload).`}
    </div>
  );
}

/** Sends, edits and deletes still in the outbox. */
function usePending(): number {
  const { client } = useLockstep();
  const [count, setCount] = useState(0);
  useEffect(() => {
    if (client === null) return undefined;
    const update = () => {
      let n = 0;
      for (const r of client.store.getSnapshot().sends.values()) if (r.status === "pending") n += 1;
      setCount(n);
    };
    update();
    return client.store.subscribe(update);
  }, [client]);
  return count;
}

function ChannelEntry({ id, selected, onSelect, onLeave }: { id: string; selected: boolean; onSelect: () => void; onLeave: () => void }): ReactNode {
  // Every listed channel stays joined: its unread count updates live.
  const { status, messages, channel } = useChannel(id);
  const { reads } = useReadReceipts(id);
  const { userId } = useConnection();
  const mine = userId === null ? 0 : reads.get(userId) ?? 0;
  const unread = messages.filter((m) => !m.mine && m.seq !== null && m.seq > mine).length;
  return (
    <li className={selected ? "selected" : ""} data-testid={`channel-${id}`} data-status={status}>
      <button className="name" onClick={onSelect}># {id}</button>
      {status === "failed" && <span className="tag failed" title={channel?.subscription.status}>refused</span>}
      {!selected && unread > 0 && <span className="tag unread">{unread}</span>}
      <button className="leave" title="leave" onClick={onLeave}>×</button>
    </li>
  );
}

function ChannelPane({ id }: { id: string }): ReactNode {
  const view = useChannel(id, { throwOnError: true });
  const members = usePresence(id);
  const typing = useTyping(id);
  const { seenBy } = useReadReceipts(id);
  const list = useRef<HTMLOListElement>(null);
  const lastSeq = view.channel?.lastSeq ?? 0;

  // Read up to the newest message while the page is visible.
  const marked = useRef(0);
  useEffect(() => {
    if (lastSeq > marked.current && view.status === "subscribed" && document.visibilityState === "visible") {
      marked.current = lastSeq;
      view.markRead(lastSeq);
    }
  }, [lastSeq, view]);
  useEffect(() => {
    list.current?.lastElementChild?.scrollIntoView({ block: "end" });
  }, [view.items.length]);

  const lastMine = useMemo(() => [...view.messages].reverse().find((m) => m.mine && m.seq !== null), [view.messages]);
  return (
    <section className="pane" data-testid="pane" data-channel={id} data-status={view.status}>
      <div className="messages-col">
        <h2># {id} <small data-testid="subscription">{view.status}</small></h2>
        <ol ref={list} className="messages" data-testid="messages">
          {view.items.map((item) => (
            <Item key={item.key} item={item} onRetry={(m) => { view.dismiss(m.clientMsgId); view.send(m.body); }}
              onDismiss={(m) => view.dismiss(m.clientMsgId)} />
          ))}
        </ol>
        {lastMine !== undefined && lastMine.seq !== null && (
          <p className="seen" data-testid="seen">{seenLine(seenBy(lastMine.seq))}</p>
        )}
        <p className="typing" data-testid="typing">{typingLine(typing)}</p>
        <Composer onSend={(text) => view.send({ text })} onTyping={(active) => view.setTyping(active)} />
      </div>
      <aside>
        <h3>Here now ({members.length})</h3>
        <ul data-testid="members">
          {members.map((m) => <li key={m}>{m}</li>)}
        </ul>
      </aside>
    </section>
  );
}

function seenLine(users: string[]): string {
  return users.length === 0 ? "" : `Seen by ${users.join(", ")}`;
}

function typingLine(users: readonly string[]): string {
  if (users.length === 0) return "";
  if (users.length === 1) return `${users[0]} is typing…`;
  return `${users.slice(0, -1).join(", ")} and ${users.at(-1)} are typing…`;
}

function textOf(body: unknown): string {
  if (typeof body === "object" && body !== null && "text" in body && typeof body.text === "string") return body.text;
  return JSON.stringify(body);
}

function Item({ item, onRetry, onDismiss }: { item: TimelineItem; onRetry: (m: MessageItem) => void; onDismiss: (m: MessageItem) => void }): ReactNode {
  if (item.kind === "truncated") {
    return <li className="marker">{item.to - item.from + 1} older messages are no longer available</li>;
  }
  if (item.kind === "reset") return <li className="marker">The channel was reset: earlier messages are gone</li>;
  const status = item.status;
  return (
    <li className={`message ${status} ${item.mine ? "mine" : ""}`} data-testid="message" data-status={status}
      data-author={item.authorId ?? ""} data-seq={item.seq ?? ""}>
      <span className="author">{item.mine ? "you" : item.authorId}</span>
      <span className="body">{item.deleted ? <em>deleted</em> : textOf(item.body)}</span>
      {item.edited && <span className="tag">edited</span>}
      {item.mine && <span className={`state ${status}`} data-testid="state" title={item.error?.message ?? status}>
        {status === "pending" ? "pending" : status === "sent" ? "sent" : "failed"}
      </span>}
      {status === "failed" && (
        <>
          <button onClick={() => onRetry(item)}>retry</button>
          <button onClick={() => onDismiss(item)}>dismiss</button>
        </>
      )}
    </li>
  );
}

function Composer({ onSend, onTyping }: { onSend: (text: string) => void; onTyping: (active: boolean) => void }): ReactNode {
  const [text, setText] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (text.trim() === "") return;
    onSend(text);
    onTyping(false);
    setText("");
  };
  return (
    <form className="composer" onSubmit={submit}>
      <input data-testid="composer" placeholder="Write a message" value={text} maxLength={4000}
        onChange={(e) => {
          setText(e.target.value);
          onTyping(e.target.value !== "");
        }} />
      <button data-testid="send">Send</button>
    </form>
  );
}

const root = document.getElementById("root");
if (root !== null) {
  createRoot(root).render(<StrictMode><App /></StrictMode>);
}
