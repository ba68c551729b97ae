/**
 * The client: drives the WebAssembly machine with socket.io-client, one
 * timer and the page's lifecycle events, and keeps the store a UI reads.
 *
 * Every input (a command, a socket report, the timer) is one call into
 * the machine with `now`; the batch it returns says what to do: socket
 * work, app events, the next deadline. Nothing else decides anything.
 */
import type { ManagerOptions, SocketOptions } from "socket.io-client";
import type { AckRef, Batch, Inspection, LogOut, OutcomeOut, StateOut, WasmClient, WebConfig } from "../gen/lockstep_wasm.js";
import { LockstepError, errorKind } from "./errors.js";
import { type ClientMetrics, Meter } from "./meter.js";
import { IndexedDbOutboxStorage, type LockManagerLike, Ownership, type OutboxStorage, defaultLocks } from "./storage.js";
import { Store } from "./store.js";
import { type Ticker, type TickerChoice, makeTicker } from "./timer.js";
import { SocketIoTransport, type Transport, type TransportFactory, type TransportSink } from "./transport.js";
import { Instance, type WasmSource, loadWasm } from "./wasm.js";

/** The machine's options, as the generated `WebConfig` names them. */
const CONFIG_KEYS = [
  "connectTimeout", "reconnectionDelay", "reconnectionDelayMax", "reconnectionAttempts",
  "randomizationFactor", "suspendAfter", "suspendedRetryDelay", "joinTimeout", "joinRetryDelay",
  "joinRetryDelayMax", "requestTimeout", "maxSendFailures", "sendWindow", "outboxMax", "maxChannels",
  "initialBacklog", "historyPage", "typingTtl", "typingResend",
] as const satisfies readonly (keyof WebConfig)[];
// Fails to compile when the Rust options gain a field this list lacks.
const allConfigKeys: Exclude<keyof WebConfig, (typeof CONFIG_KEYS)[number]> extends never ? true : never = true;
void allConfigKeys;

/** The machine's default connect timeout (ms), for the socket's own timer. */
const CONNECT_TIMEOUT_DEFAULT = 10_000;
/** Events of one socket coalesced into one machine call, at most (and at most this many bytes). */
const BURST_EVENTS_MAX = 256;
const BURST_BYTES_MAX = 1 << 20;
/** Default pause between two `client:metrics` reports (ms). */
const METRICS_INTERVAL_DEFAULT = 10_000;
/** The event that carries the client's counters to the server (docs/PROTOCOL.md). */
const REPORT_EVENT = "client:metrics";
/** Panics survived within a minute before the client gives up. */
const REBUILDS_PER_MINUTE_DEFAULT = 5;

/** Everything `createClient` accepts. Only `url` and a token are required. */
export interface ClientOptions extends WebConfig {
  /** The server, e.g. `https://chat.example.com`. */
  url: string;
  /** A fixed token for `auth: { token }`. Give this or `getToken`. */
  token?: string;
  /** Gives a fresh token for every connection attempt, so an expired one is refreshed on reconnect. */
  getToken?: () => string | Promise<string>;
  /** Extra socket.io-client options (`path`, `transports`, `withCredentials`, ...). Reconnection stays off. */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** Where the outbox survives a reload. Default: IndexedDB where available, else none. `null`: none. */
  storage?: OutboxStorage | null;
  /** Which outbox (e.g. per user). Default `"default"`. */
  storageKey?: string;
  /** Who owns the outbox among tabs. Default `navigator.locks` where available. */
  locks?: LockManagerLike | null;
  /** The wasm module, when the default `new URL("../gen/lockstep.wasm", import.meta.url)` does not suit. */
  wasm?: WasmSource;
  /** `worker` (default: a Web Worker where available, else the main thread) or `main`. */
  timer?: TickerChoice;
  /** Connect at once (default `true`), like socket.io-client's `autoConnect`. */
  autoConnect?: boolean;
  /** Channels subscribed before the persisted outbox is restored. */
  channels?: readonly string[];
  /** Stored messages the store keeps per channel. Default 500. */
  maxMessagesPerChannel?: number;
  /** Resolved send records the store keeps. Default 1000. */
  maxResolvedSends?: number;
  /** Panics survived per minute before the client closes. Default 5. */
  maxRebuildsPerMinute?: number;
  /** Background failures: a panic (the machine was rebuilt), storage, the token provider. */
  onError?: (error: LockstepError) => void;
  /**
   * Milliseconds between two `client:metrics` reports of this client's
   * counters to the server (only while connected, only when something
   * changed). Default 10000; 0 turns reporting off.
   */
  metricsInterval?: number;
  /** The socket layer; the default is socket.io-client (tests and custom transports replace it). */
  transport?: (sink: TransportSink, settings: { token: () => Promise<string>; connectTimeout: number }) => Transport;
}

/** A send, edit or delete accepted into the outbox. */
export interface SendHandle {
  /** The entry's id: the `clientMsgId` of a send, the op id of an edit or delete. */
  readonly id: string;
  /** Settles with the one outcome; never rejects. Stays pending if the client is closed first. */
  readonly outcome: Promise<OutcomeOut>;
}

/** What the client still holds, for leak checks. */
export interface ClientInspection {
  /** The machine's own counters (`null` once closed). */
  machine: Inspection | null;
  /** Sockets open. */
  sockets: number;
  /** Timers armed. */
  timers: number;
  /** Page lifecycle listeners registered. */
  pageListeners: number;
  /** Store listeners registered. */
  storeListeners: number;
  /** Machine instances started (1 + rebuilds after panics). */
  instances: number;
}

type Call = (m: WasmClient, now: number) => string;
/** Rewrites a batch before it is applied (resolves `logRef` events). */
type Fix = (batch: Batch) => void;

interface PageTarget {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** A reliable chat client: connection, channels, outbox and inbox. See `createClient`. */
export class LockstepClient {
  /** The UI's view: `store.subscribe(listener)`, `store.getSnapshot()`. */
  readonly store: Store;

  private instance: Instance;
  private instances = 1;
  private readonly optionsJson: string;
  private readonly desired = new Set<string>();
  private wantConnected = false;
  private closed = false;
  private closing = false;
  private applying = false;
  private readonly queue: Array<[Call, Fix | undefined]> = [];
  /** Server events not yet handed to the machine: one call per burst (flushed before any other input). */
  private burst: Burst | null = null;
  private burstQueued = false;
  private readonly ticker: Ticker;
  /** The deadline the ticker is armed for (`null`: disarmed), so an unchanged one is not re-armed. */
  private armedFor: number | null = null;
  private transport: Transport;
  private readonly ownership: Ownership | undefined;
  private readonly storage: OutboxStorage | null;
  private readonly storageKey: string;
  private lastExport = "";
  private saving: Promise<void> | undefined;
  private saveAgain = false;
  private readonly waiters = new Map<string, (o: OutcomeOut) => void>();
  private readonly rebuilds: number[] = [];
  private readonly pageListeners: Array<[PageTarget, string]> = [];
  private readonly eventListeners = new Set<(events: Batch["events"]) => void>();
  private readonly meter = new Meter();
  /** The connection state as of the last batch applied. */
  private connection: StateOut = { name: "idle" };
  private readonly metricsInterval: number;
  /** The pending `client:metrics` report's timer. */
  private reportTimer: ReturnType<typeof setTimeout> | undefined;

  /** Use `createClient`. */
  constructor(private readonly module: WebAssembly.Module, private readonly options: ClientOptions) {
    const config: Partial<Record<string, unknown>> = {};
    for (const key of CONFIG_KEYS) {
      if (options[key] !== undefined) config[key] = options[key];
    }
    this.optionsJson = JSON.stringify(config);
    this.store = new Store({
      maxMessagesPerChannel: options.maxMessagesPerChannel ?? 500,
      maxResolvedSends: options.maxResolvedSends ?? 1000,
    });
    try {
      this.instance = new Instance(module, this.optionsJson);
    } catch (e) {
      throw new LockstepError("invalid", e instanceof Error ? e.message : String(e), { cause: e });
    }
    this.ticker = makeTicker(options.timer ?? "worker", () => {
      this.armedFor = null;
      this.input((m, now) => m.tick(now));
    });
    this.transport = this.makeTransport();
    this.storage = options.storage === undefined
      ? (typeof globalThis.indexedDB === "undefined" ? null : new IndexedDbOutboxStorage())
      : options.storage;
    this.storageKey = options.storageKey ?? "default";
    this.metricsInterval = options.metricsInterval ?? METRICS_INTERVAL_DEFAULT;
    if (!(this.metricsInterval >= 0)) {
      throw new LockstepError("invalid", `metricsInterval must be 0 (off) or more, not ${String(options.metricsInterval)}`);
    }
    this.ownership = this.storage === null
      ? undefined
      : new Ownership(options.locks === undefined ? defaultLocks() : options.locks, `lockstep-outbox:${this.storageKey}`);
    this.listenToPage();
  }

  /** Subscribes the initial channels, then takes the outbox (or waits in line for it). */
  async start(): Promise<void> {
    for (const channel of this.options.channels ?? []) this.subscribe(channel);
    if (this.ownership !== undefined && await this.ownership.start(() => void this.restore())) {
      await this.restore();
    }
    if (this.options.autoConnect ?? true) this.connect();
  }

  // ---- commands -------------------------------------------------------

  /** Starts connecting (single flight; retries now while waiting to retry). */
  connect(): void {
    this.wantConnected = true;
    this.command((m, now) => m.connect(now));
  }

  /**
   * Closes for good: the socket, the timer, the page listeners, the
   * outbox lock. Unsent entries stay persisted for the next start.
   */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.wantConnected = false;
    this.run((m, now) => m.close(now));
    this.closed = true;
    this.transport.closeAll();
    this.ticker.dispose();
    this.armReport(false);
    for (const [target, type] of this.pageListeners) target.removeEventListener(type, this.poke);
    this.pageListeners.length = 0;
    await this.saving;
    this.ownership?.stop();
    this.storage?.close?.();
    this.instance.free();
    this.waiters.clear();
  }

  /** Wants `channelId` subscribed, now and after every reconnect. */
  subscribe(channelId: string): void {
    const position = this.store.position(channelId);
    this.command((m, now) => position === null
      ? m.subscribe(now, channelId)
      : m.subscribeFrom(now, channelId, position.epoch, position.lastSeq));
    this.desired.add(channelId);
    this.store.ensure(channelId);
  }

  /** No longer wants `channelId`; its unsent entries fail (`unsubscribed`). */
  unsubscribe(channelId: string): void {
    this.command((m, now) => m.unsubscribe(now, channelId));
    this.desired.delete(channelId);
    this.store.forget(channelId);
  }

  /** Queues a message; it shows at once as pending and resolves exactly once. `body`: any JSON value. */
  send(channelId: string, body: unknown): SendHandle {
    const text = json(body);
    return this.queued(this.command((m, now) => m.send(now, channelId, text)));
  }

  /** Queues an edit of one's own message. */
  update(channelId: string, messageId: string, body: unknown): SendHandle {
    const text = json(body);
    return this.queued(this.command((m, now) => m.update(now, channelId, messageId, text)));
  }

  /** Queues the deletion of one's own message. */
  delete(channelId: string, messageId: string): SendHandle {
    return this.queued(this.command((m, now) => m.delete(now, channelId, messageId)));
  }

  /** Marks `channelId` read up to `upTo` (max wins). */
  markRead(channelId: string, upTo: number): void {
    this.command((m, now) => m.markRead(now, channelId, upTo));
  }

  /** Shows or hides our typing indicator (call on each keystroke; it expires by itself). */
  setTyping(channelId: string, active: boolean): void {
    this.command((m, now) => m.setTyping(now, channelId, active));
  }

  /** Removes a failed entry from the view. */
  dismiss(channelId: string, id: string): void {
    this.store.dismiss(channelId, id);
  }

  /** Hears every batch of app events (raw, in order); returns the function that stops it. */
  onEvents(listener: (events: Batch["events"]) => void): () => void {
    this.eventListeners.add(listener);
    return () => {
      this.eventListeners.delete(listener);
    };
  }

  /** The connection state. */
  get state(): StateOut {
    return this.store.getSnapshot().connection;
  }

  /** A copy of the counters. */
  metrics(): ClientMetrics {
    return this.meter.metrics();
  }

  /** What the client still holds (sockets, timers, listeners, the machine's timers and requests). */
  inspect(): ClientInspection {
    let machine: Inspection | null = null;
    if (!this.closed) {
      try {
        machine = this.instance.inspect();
      } catch {
        machine = null;
      }
    }
    return {
      machine,
      sockets: this.transport.live(),
      timers: this.ticker.armed() + (this.reportTimer === undefined ? 0 : 1),
      pageListeners: this.pageListeners.length,
      storeListeners: this.store.listenerCount(),
      instances: this.instances,
    };
  }

  /** Panics inside the machine on purpose: exercises the recovery path (tests, chaos drills). */
  crash(): void {
    this.input((m) => {
      m.crash();
      return "";
    });
  }

  // ---- the driver -----------------------------------------------------

  /** A command from the app: refused synchronously with a typed error. */
  private command(call: Call): Batch {
    if (this.closed) throw new LockstepError("closed", "client is closed");
    const batch = this.run(call);
    if (batch === null) throw new LockstepError("panic", "the machine was rebuilt after a panic; try again");
    const result = batch.result;
    if (result !== undefined && "error" in result) {
      throw new LockstepError(errorKind(result.error.kind), result.error.message);
    }
    return batch;
  }

  /** An input from a socket or the timer; queued while a batch is applied. */
  private input(call: Call, fix?: Fix): void {
    if (this.closed) return;
    if (this.applying) {
      this.queue.push([call, fix]);
      return;
    }
    this.run(call, fix);
  }

  /** One call in, one batch out, applied; then the inputs that came meanwhile. */
  private run(call: Call, fix?: Fix): Batch | null {
    let batch: Batch;
    try {
      batch = this.instance.call((m) => call(m, performance.now()));
    } catch (e) {
      this.recover(e);
      return null;
    }
    fix?.(batch);
    this.apply(batch);
    while (!this.applying && this.queue.length > 0 && !this.closed) {
      const next = this.queue.shift();
      if (next !== undefined) this.run(next[0], next[1]);
    }
    return batch;
  }

  private apply(batch: Batch): void {
    this.applying = true;
    try {
      for (const t of batch.transmits) {
        switch (t.type) {
          case "open": this.transport.open(t.generation); break;
          case "connect": this.transport.connect(t.generation, t.token); break;
          case "emit": this.transport.emit(t.generation, t.name, t.payload, t.ack); break;
          case "close": this.transport.close(t.generation); break;
        }
      }
      let outbox = false;
      for (const e of batch.events) {
        if (e.type === "pending" || e.type === "outcome") outbox = true;
      }
      if (batch.events.length > 0) {
        this.meter.observe(batch.events, this.connection, () => this.rejoining());
        for (const e of batch.events) if (e.type === "state") this.connection = e.state;
      }
      this.store.apply(batch.events);
      for (const e of batch.events) {
        if (e.type !== "outcome") continue;
        const waiter = this.waiters.get(e.id);
        this.waiters.delete(e.id);
        waiter?.(e.outcome);
      }
      if (batch.events.length > 0) for (const l of this.eventListeners) l(batch.events);
      if (outbox) this.persist();
      if (this.reportTimer === undefined && this.connection.name === "connected") this.armReport(true);
      if (batch.deadline !== this.armedFor) {
        this.armedFor = batch.deadline;
        this.ticker.arm(batch.deadline === null ? null : batch.deadline - performance.now());
      }
    } finally {
      this.applying = false;
    }
  }

  /** Channels a reconnection re-joins: wanted, and not refused for good. */
  private rejoining(): ReadonlySet<string> {
    const channels = this.store.getSnapshot().channels;
    return new Set([...this.desired].filter((id) => channels.get(id)?.subscription.status !== "failed"));
  }

  /** Arms (with `false`: disarms) the timer of the next `client:metrics` report. */
  private armReport(on: boolean): void {
    if (this.reportTimer !== undefined) clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
    if (!on || this.metricsInterval === 0 || this.closed || !this.meter.dirty()) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      this.sendReport();
    }, this.metricsInterval);
  }

  /**
   * Sends what changed since the last report over the live socket (fire
   * and forget: a report lost with its socket is not sent again).
   */
  private sendReport(): void {
    if (this.closed || this.connection.name !== "connected") return;
    const report = this.meter.report();
    if (report === null) return;
    this.transport.emit(this.connection.generation, REPORT_EVENT, report as unknown as Record<string, unknown>, null);
    this.armReport(true);
  }

  private queued(batch: Batch): SendHandle {
    const result = batch.result;
    const id = result !== undefined && "id" in result ? result.id : undefined;
    if (id === undefined) throw new LockstepError("invalid", "the machine gave no id");
    const outcome = new Promise<OutcomeOut>((resolve) => {
      const record = this.store.getSnapshot().sends.get(id);
      if (record !== undefined && record.status !== "pending") {
        resolve(record.status === "failed" && record.error !== null
          ? { status: "failed", ...record.error }
          : record.status === "sent"
            ? { status: "sent", seq: record.seq ?? 0, messageId: record.messageId ?? "" }
            : { status: "applied", seq: record.seq ?? 0 });
      } else {
        this.waiters.set(id, resolve);
      }
    });
    return { id, outcome };
  }

  private makeTransport(): Transport {
    const settings = {
      token: () => this.token(),
      connectTimeout: this.options.connectTimeout ?? CONNECT_TIMEOUT_DEFAULT,
    };
    const sink = this.sink(this.instances);
    if (this.options.transport !== undefined) return this.options.transport(sink, settings);
    const factory: TransportFactory = (s) => new SocketIoTransport({
      url: this.options.url,
      ...settings,
      ...(this.options.socketOptions === undefined ? {} : { socketOptions: this.options.socketOptions }),
    }, s);
    return factory(sink);
  }

  /** Reports of the sockets of machine instance `incarnation` (a rebuilt machine ignores older ones). */
  private sink(incarnation: number): TransportSink {
    const live = () => incarnation === this.instances;
    const feed = (call: Call) => {
      if (!live()) return;
      // Events that came first go to the machine first.
      this.flushBurst();
      this.input(call);
    };
    return {
      opened: (g, token) => feed((m, now) => m.opened(now, g, token)),
      closed: (g, reason) => feed((m, now) => m.closed(now, g, reason)),
      connectError: (g, message) => feed((m, now) => m.connectError(now, g, message)),
      event: (g, name, payload) => {
        if (!live()) return;
        const pair: [string, unknown] = [name, payload ?? null];
        this.coalesce(g, json(pair), pair);
      },
      packet: (g, text) => {
        if (live()) this.coalesce(g, text, undefined);
      },
      ack: (g, ack: AckRef, reply) => {
        const text = json(reply ?? null);
        feed((m, now) => m.ack(now, g, ack.req, ack.kind, text));
      },
    };
  }

  /**
   * Queues a server event (its packet's JSON text, and its arguments when
   * they are parsed already) for one machine call per burst: the events a
   * socket delivers in one task go in together.
   */
  private coalesce(generation: number, text: string, pair: [string, unknown] | undefined): void {
    if (this.burst !== null && this.burst.generation !== generation) this.flushBurst();
    const burst = this.burst ?? { generation, texts: [], pairs: [], bytes: 0 };
    this.burst = burst;
    burst.pairs[burst.texts.length] = pair;
    burst.texts.push(text);
    burst.bytes += text.length;
    if (burst.texts.length >= BURST_EVENTS_MAX || burst.bytes >= BURST_BYTES_MAX) {
      this.flushBurst();
    } else if (!this.burstQueued) {
      this.burstQueued = true;
      queueMicrotask(() => {
        this.burstQueued = false;
        this.flushBurst();
      });
    }
  }

  private flushBurst(): void {
    const burst = this.burst;
    if (burst === null) return;
    this.burst = null;
    const { texts, pairs } = burst;
    this.input((m, now) => {
      // UTF-8 of every packet, one after another, and each one's length:
      // the browser's encoder writes it into a buffer that wasm-bindgen
      // copies in one piece (during this call, so one buffer serves all).
      const lengths = new Uint32Array(texts.length);
      if (utf8.length < burst.bytes * 3) utf8 = new Uint8Array(Math.max(burst.bytes * 3, utf8.length * 2));
      let end = 0;
      for (let i = 0; i < texts.length; i++) {
        const written = encoder.encodeInto(texts[i] ?? "", utf8.subarray(end)).written;
        lengths[i] = written;
        end += written;
      }
      return m.events(now, burst.generation, utf8.subarray(0, end), lengths);
    }, (batch) => {
      // Deliveries of this burst's events come back as references to its
      // packets (checked by the machine): each is the event.
      if (!batch.events.some((e) => e.type === "logRef")) return;
      const events: Batch["events"] = [];
      for (const e of batch.events) {
        if (e.type !== "logRef") {
          events.push(e);
          continue;
        }
        for (let i = e.index; i < e.index + e.count; i++) {
          const pair = pairs[i] ?? parsePacket(texts[i] ?? "");
          events.push(pair === undefined
            ? { type: "protocol", message: "a packet the machine accepted did not parse" }
            : { type: "log", channelId: e.channelId, event: logOf(pair[0], pair[1]) });
        }
      }
      batch.events = events;
    });
  }

  private async token(): Promise<string> {
    if (this.options.getToken !== undefined) {
      try {
        return await this.options.getToken();
      } catch (e) {
        this.report(new LockstepError("token", `token provider failed: ${String(e)}`, { cause: e }));
        throw e;
      }
    }
    return this.options.token ?? "";
  }

  // ---- persistence ------------------------------------------------------

  /** Restores the persisted outbox into the machine, then saves the merged one. */
  private async restore(): Promise<void> {
    if (this.storage === null || this.closed) return;
    let text: string | null;
    try {
      text = await this.storage.load(this.storageKey);
    } catch (e) {
      this.report(new LockstepError("storage", `loading the outbox failed: ${String(e)}`, { cause: e }));
      return;
    }
    if (this.closed) return;
    if (text !== null) {
      try {
        this.command((m, now) => m.restoreOutbox(now, text));
      } catch (e) {
        this.report(e instanceof LockstepError ? e : new LockstepError("storage", String(e), { cause: e }));
      }
    }
    this.persist();
  }

  /** Saves the outbox (coalesced: one write at a time, the latest wins). */
  private persist(): void {
    try {
      this.lastExport = this.instance.raw.exportOutbox();
    } catch {
      return;
    }
    if (this.storage === null || this.ownership?.isOwner !== true || this.saving !== undefined) {
      this.saveAgain = this.saving !== undefined;
      return;
    }
    const storage = this.storage;
    this.saving = (async () => {
      do {
        this.saveAgain = false;
        await storage.save(this.storageKey, this.lastExport);
      } while (this.saveAgain);
    })().catch((e: unknown) => {
      this.report(new LockstepError("storage", `saving the outbox failed: ${String(e)}`, { cause: e }));
    }).finally(() => {
      this.saving = undefined;
    });
  }

  // ---- recovery -----------------------------------------------------------

  /** A call threw: the instance is dead (a Rust panic aborts it). Rebuild it from the outbox. */
  private recover(error: unknown): void {
    const why = this.instance.lastPanic() ?? (error instanceof Error ? error.message : String(error));
    this.meter.panicked();
    this.report(new LockstepError("panic", `the client machine panicked (rebuilt from the outbox): ${why}`, { cause: error }));
    this.transport.closeAll();
    this.ticker.arm(null);
    this.armedFor = null;
    if (this.closing) return;
    const now = performance.now();
    while (this.rebuilds.length > 0 && (this.rebuilds[0] ?? 0) < now - 60_000) this.rebuilds.shift();
    this.rebuilds.push(now);
    if (this.rebuilds.length > (this.options.maxRebuildsPerMinute ?? REBUILDS_PER_MINUTE_DEFAULT)) {
      this.report(new LockstepError("panic", "too many panics within a minute: the client closed"));
      this.store.apply([{ type: "state", state: { name: "failed", reason: "panic", message: why } }]);
      void this.close();
      return;
    }
    this.instance = new Instance(this.module, this.optionsJson);
    this.instances += 1;
    this.queue.length = 0;
    this.burst = null;
    this.transport = this.makeTransport();
    const snapshot = this.lastExport;
    const connect = this.wantConnected;
    queueMicrotask(() => {
      if (this.closed) return;
      for (const channel of this.desired) this.subscribe(channel);
      if (snapshot !== "") this.command((m, t) => m.restoreOutbox(t, snapshot));
      if (connect) this.connect();
    });
  }

  private report(error: LockstepError): void {
    this.options.onError?.(error);
  }

  // ---- the page -------------------------------------------------------------

  /** Back online, visible again, or restored from the back-forward cache: retry now. */
  private readonly poke = (): void => {
    if (this.closed) return;
    const name = this.store.getSnapshot().connection.name;
    if (this.wantConnected && (name === "reconnecting" || name === "suspended")) {
      this.input((m, now) => m.connect(now));
    } else {
      this.input((m, now) => m.tick(now));
    }
  };

  private listenToPage(): void {
    const g = globalThis as { addEventListener?: unknown; document?: unknown };
    const add = (target: unknown, type: string) => {
      const t = target as Partial<PageTarget> | undefined;
      if (typeof t?.addEventListener === "function" && typeof t.removeEventListener === "function") {
        t.addEventListener(type, this.poke);
        this.pageListeners.push([t as PageTarget, type]);
      }
    };
    add(g, "online");
    add(g, "pageshow");
    add(g.document, "visibilitychange");
  }
}

/** The log event a checked `message:*` payload is (its fields, without extras). */
function logOf(name: string, payload: unknown): LogOut {
  const p = payload as { seq: number; messageId: string; authorId: string; clientMsgId: string; body?: unknown; ts: number };
  switch (name) {
    case "message:new": {
      const m: LogOut = { type: "message", seq: p.seq, messageId: p.messageId, authorId: p.authorId, clientMsgId: p.clientMsgId, ts: p.ts };
      if (p.body !== undefined) m.body = p.body;
      return m;
    }
    case "message:updated": {
      const u: LogOut = { type: "updated", seq: p.seq, messageId: p.messageId };
      if (p.body !== undefined) u.body = p.body;
      return u;
    }
    default:
      return { type: "deleted", seq: p.seq, messageId: p.messageId };
  }
}

const encoder = new TextEncoder();
/**
 * Where bursts are encoded (UTF-8 takes at most 3 bytes per UTF-16 unit),
 * shared by clients. It grows to 3 × the largest burst: a burst is flushed
 * once it reaches `BURST_BYTES_MAX`, so that is 3 MiB plus 3 × one packet
 * (which socket.io's `maxHttpBufferSize` bounds, 1 MB by default).
 */
let utf8 = new Uint8Array(64 * 1024);

/** A burst of server events of one socket, not yet handed to the machine. */
interface Burst {
  generation: number;
  /** Each event's packet text, `["name", payload]`. */
  texts: string[];
  /** Each event's arguments, when they came parsed (a custom transport). */
  pairs: Array<[string, unknown] | undefined>;
  /** The texts' total length. */
  bytes: number;
}

/** A packet's JSON text parsed: its name and arguments (the machine checked it). */
function parsePacket(text: string): [string, unknown] | undefined {
  try {
    return JSON.parse(text) as [string, unknown];
  } catch {
    return undefined;
  }
}

/** JSON text of a body; `undefined`, functions and symbols are refused. */
function json(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new LockstepError("invalid", "the body must be a JSON value");
  return text;
}

/**
 * Creates a client: loads the module (once per page), subscribes
 * `options.channels`, restores the persisted outbox (when this tab owns
 * it), and connects unless `autoConnect` is false.
 */
export async function createClient(options: ClientOptions): Promise<LockstepClient> {
  if (options.token === undefined && options.getToken === undefined) {
    throw new LockstepError("invalid", "give a token or a getToken provider");
  }
  const module = await loadWasm(options.wasm);
  const client = new LockstepClient(module, options);
  await client.start();
  return client;
}
