/**
 * A framework-free view of the client for a UI: the connection, and per
 * channel the messages in seq order with one's own optimistic entries
 * merged in place, gaps and resets made visible, members, typing and read
 * watermarks; plus every send's outcome.
 *
 * `subscribe(listener)` / `getSnapshot()` have the shape React's
 * `useSyncExternalStore` wants: a snapshot is immutable and the same object
 * until something changed; listeners are told once per burst of events.
 */
import type { AppEvent, ErrorCode, StateOut, SubscriptionOut } from "../gen/lockstep_wasm.js";

/** One message as the UI shows it. */
export interface MessageItem {
  readonly kind: "message";
  /** Stable across pending → sent (`c:<clientMsgId>` for one's own, `m:<messageId>` for others'). */
  readonly key: string;
  /** `pending` (in the outbox), `sent` (stored: has its seq), or `failed` (given up; see `error`). */
  readonly status: "pending" | "sent" | "failed";
  /** Its position in the channel log; `null` until stored. */
  readonly seq: number | null;
  /** The server's id; `null` until stored. */
  readonly messageId: string | null;
  /** The author; `null` for one's own entry before the server said who we are. */
  readonly authorId: string | null;
  /** The sender's idempotency key. */
  readonly clientMsgId: string;
  /** The payload (`undefined` once deleted). */
  readonly body: unknown;
  /** Server time at commit (ms since the Unix epoch); `null` until known. */
  readonly ts: number | null;
  /** Whether one's own client sent it. */
  readonly mine: boolean;
  /** Edited since it was posted. */
  readonly edited: boolean;
  /** Deleted (a tombstone). */
  readonly deleted: boolean;
  /** Why it failed, when `status` is `failed`. */
  readonly error: SendError | null;
}

/** Messages that no longer exist on the server: never a silent gap. */
export interface TruncatedItem {
  readonly kind: "truncated";
  readonly key: string;
  /** First missing seq. */
  readonly from: number;
  /** Last missing seq. */
  readonly to: number;
}

/** The channel's log was reset (a new epoch): what came before is gone. */
export interface ResetItem {
  readonly kind: "reset";
  readonly key: string;
  /** The new log identity. */
  readonly epoch: string;
}

/** An entry of a channel's timeline. */
export type TimelineItem = MessageItem | TruncatedItem | ResetItem;

/** Why a send, edit or delete failed. */
export interface SendError {
  /** `refused`, `unsubscribed`, `subscription_failed`, `exhausted`. */
  readonly reason: string;
  /** The server's code, when it refused. */
  readonly code: ErrorCode | null;
  /** What happened. */
  readonly message: string;
}

/** Where one send, edit or delete stands. */
export interface SendRecord {
  readonly id: string;
  readonly channelId: string;
  readonly op: "send" | "update" | "delete";
  readonly status: "pending" | "sent" | "applied" | "failed";
  readonly seq: number | null;
  readonly messageId: string | null;
  readonly error: SendError | null;
}

/** One channel, as the UI shows it. */
export interface ChannelSnapshot {
  readonly channelId: string;
  readonly subscription: SubscriptionOut;
  /** Stored messages and markers in seq order, then one's own unsent entries in send order. */
  readonly items: readonly TimelineItem[];
  /** Who is present, sorted. */
  readonly members: readonly string[];
  /** Who is typing, sorted. */
  readonly typing: readonly string[];
  /** Read watermarks by user id. */
  readonly reads: ReadonlyMap<string, number>;
  /** The log identity followed, once known. */
  readonly epoch: string | null;
  /** The last seq delivered (0 before any). */
  readonly lastSeq: number;
}

/** Everything the UI shows. */
export interface ClientSnapshot {
  readonly connection: StateOut;
  /** Who we are, once the server said so. */
  readonly userId: string | null;
  readonly channels: ReadonlyMap<string, ChannelSnapshot>;
  /** Sends, edits and deletes by entry id: all pending ones and the latest resolved ones. */
  readonly sends: ReadonlyMap<string, SendRecord>;
}

/** Limits that keep the view's memory bounded. */
export interface StoreLimits {
  /** Stored messages kept per channel (oldest dropped first). */
  maxMessagesPerChannel: number;
  /** Resolved send records kept. */
  maxResolvedSends: number;
}

interface ChannelState {
  subscription: SubscriptionOut;
  /** Stored items, ascending by seq (markers by their first seq). */
  stored: TimelineItem[];
  /** One's own entries not stored yet, in send order. */
  unsent: MessageItem[];
  members: Set<string>;
  typing: Set<string>;
  reads: Map<string, number>;
  epoch: string | null;
  lastSeq: number;
  /** Keys of `stored`, for O(1) "shown already?" checks. */
  storedKeys: Set<string>;
  /** messageId → key of stored messages, for edits and deletes. */
  byMessage: Map<string, string>;
  resets: number;
  snapshot: ChannelSnapshot | undefined;
}

function emptyChannel(): ChannelState {
  return {
    subscription: { status: "unsubscribed" },
    stored: [],
    unsent: [],
    members: new Set(),
    typing: new Set(),
    reads: new Map(),
    epoch: null,
    lastSeq: 0,
    storedKeys: new Set(),
    byMessage: new Map(),
    resets: 0,
    snapshot: undefined,
  };
}

/** Whether an event shows a channel the store does not show yet: one the machine wants. */
function bringsBack(e: AppEvent): boolean {
  switch (e.type) {
    case "pending":
      return true;
    case "subscription":
      return e.state.status === "subscribing" || e.state.status === "subscribed" || e.state.status === "failed";
    default:
      return false;
  }
}

function seqOf(item: TimelineItem): number {
  switch (item.kind) {
    case "message": return item.seq ?? Number.MAX_SAFE_INTEGER;
    case "truncated": return item.from;
    case "reset": return 0;
  }
}

/** The store: fed batches of app events by the client, read by the UI. */
export class Store {
  private connection: StateOut = { name: "idle" };
  private userId: string | null = null;
  private readonly channels = new Map<string, ChannelState>();
  private readonly sends = new Map<string, SendRecord>();
  private readonly resolved: string[] = [];
  private readonly listeners = new Set<() => void>();
  private snapshot: ClientSnapshot | undefined;
  private sendsSnapshot: ReadonlyMap<string, SendRecord> | undefined;
  private notifyQueued = false;

  constructor(private readonly limits: StoreLimits) {}

  /** Registers a listener; returns the function that removes it. */
  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  /** The current snapshot: the same object until something changed. */
  readonly getSnapshot = (): ClientSnapshot => {
    if (this.snapshot === undefined) {
      const channels = new Map<string, ChannelSnapshot>();
      for (const [id, ch] of this.channels) channels.set(id, this.channelSnapshot(id, ch));
      this.sendsSnapshot ??= new Map(this.sends);
      this.snapshot = {
        connection: this.connection,
        userId: this.userId,
        channels,
        sends: this.sendsSnapshot,
      };
    }
    return this.snapshot;
  };

  /** Listeners registered now, for leak checks. */
  listenerCount(): number {
    return this.listeners.size;
  }

  /** Applies one batch of events; listeners hear of it once, after the current task. */
  apply(events: readonly AppEvent[]): void {
    if (events.length === 0) return;
    for (const e of events) this.applyOne(e);
    this.snapshot = undefined;
    this.queueNotify();
  }

  /** Removes a failed entry from the view (the app acknowledged it). */
  dismiss(channelId: string, id: string): void {
    const ch = this.channels.get(channelId);
    if (ch === undefined) return;
    const key = `c:${id}`;
    const before = ch.unsent.length;
    ch.unsent = ch.unsent.filter((m) => !(m.key === key && m.status === "failed"));
    if (ch.unsent.length !== before) this.touch(ch);
  }

  /** Shows a channel the app wants, before anything happened in it. */
  ensure(channelId: string): void {
    if (this.channels.has(channelId)) return;
    this.channel(channelId);
    this.snapshot = undefined;
    this.queueNotify();
  }

  /** Forgets a channel the app left. */
  forget(channelId: string): void {
    if (this.channels.delete(channelId)) {
      this.snapshot = undefined;
      this.queueNotify();
    }
  }

  /** The position the app has of a channel, to resume from. */
  position(channelId: string): { epoch: string; lastSeq: number } | null {
    const ch = this.channels.get(channelId);
    return ch?.epoch == null ? null : { epoch: ch.epoch, lastSeq: ch.lastSeq };
  }

  private queueNotify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      for (const l of [...this.listeners]) l();
    });
  }

  private channel(id: string): ChannelState {
    let ch = this.channels.get(id);
    if (ch === undefined) {
      ch = emptyChannel();
      this.channels.set(id, ch);
    }
    return ch;
  }

  private touch(ch: ChannelState): void {
    ch.snapshot = undefined;
    this.snapshot = undefined;
  }

  private setSend(record: SendRecord): void {
    this.sends.set(record.id, record);
    this.sendsSnapshot = undefined;
    if (record.status !== "pending") {
      this.resolved.push(record.id);
      while (this.resolved.length > this.limits.maxResolvedSends) {
        const old = this.resolved.shift();
        if (old !== undefined && this.sends.get(old)?.status !== "pending") this.sends.delete(old);
      }
    }
  }

  private applyOne(e: AppEvent): void {
    switch (e.type) {
      case "state":
        this.connection = e.state;
        if (e.state.name === "connected") this.userId = e.state.userId;
        return;
      case "protocol":
        return;
      default:
        break;
    }
    if (!this.channels.has(e.channelId) && !bringsBack(e)) {
      // A channel the app left: its late events (the leave's own reply,
      // presence, typing) do not bring it back; an outcome still resolves
      // its send record.
      if (e.type === "outcome") this.onOutcome(emptyChannel(), e.channelId, e.id, e.outcome);
      return;
    }
    const ch = this.channel(e.channelId);
    this.touch(ch);
    switch (e.type) {
      case "subscription":
        ch.subscription = e.state;
        if (e.epoch !== null) ch.epoch = e.epoch;
        if (e.state.status !== "subscribed") {
          ch.members.clear();
          ch.typing.clear();
        }
        return;
      case "log":
        ch.lastSeq = Math.max(ch.lastSeq, e.event.seq);
        this.onLog(ch, e.event);
        return;
      case "truncated":
        ch.lastSeq = Math.max(ch.lastSeq, e.to);
        this.insertStored(ch, { kind: "truncated", key: `t:${e.from}-${e.to}`, from: e.from, to: e.to });
        return;
      case "reset":
        ch.resets += 1;
        ch.epoch = e.epoch;
        ch.lastSeq = 0;
        ch.stored = [];
        ch.storedKeys.clear();
        ch.byMessage.clear();
        this.insertStored(ch, { kind: "reset", key: `r:${ch.resets}:${e.epoch}`, epoch: e.epoch });
        return;
      case "pending":
        this.onPending(ch, e.channelId, e.id, e.command);
        return;
      case "outcome":
        this.onOutcome(ch, e.channelId, e.id, e.outcome);
        return;
      case "members":
        ch.members = new Set(e.members);
        return;
      case "memberJoined":
        ch.members.add(e.userId);
        return;
      case "memberLeft":
        ch.members.delete(e.userId);
        ch.typing.delete(e.userId);
        return;
      case "typing":
        if (e.active) ch.typing.add(e.userId);
        else ch.typing.delete(e.userId);
        return;
      case "read":
        ch.reads.set(e.userId, Math.max(ch.reads.get(e.userId) ?? 0, e.upTo));
        return;
    }
  }

  private onPending(ch: ChannelState, channelId: string, id: string,
    command: Extract<AppEvent, { type: "pending" }>["command"]): void {
    const existing = this.sends.get(id);
    if (existing === undefined || existing.status === "failed") {
      this.setSend({
        id, channelId, op: command.kind, status: "pending", seq: null,
        messageId: command.kind === "send" ? null : command.messageId, error: null,
      });
    }
    if (command.kind !== "send") return;
    const key = `c:${id}`;
    // Restored again after a rebuild, or already stored: shown once.
    if (ch.storedKeys.has(key) || ch.unsent.some((m) => m.key === key)) return;
    ch.unsent.push({
      kind: "message", key, status: "pending", seq: null, messageId: null, authorId: this.userId,
      clientMsgId: id, body: command.body, ts: null, mine: true, edited: false, deleted: false, error: null,
    });
  }

  private onOutcome(ch: ChannelState, channelId: string, id: string,
    outcome: Extract<AppEvent, { type: "outcome" }>["outcome"]): void {
    const before = this.sends.get(id);
    const op = before?.op ?? (outcome.status === "applied" ? "update" : "send");
    const key = `c:${id}`;
    const index = ch.unsent.findIndex((m) => m.key === key);
    switch (outcome.status) {
      case "sent": {
        this.setSend({ id, channelId, op, status: "sent", seq: outcome.seq, messageId: outcome.messageId, error: null });
        if (index < 0) return;
        const [entry] = ch.unsent.splice(index, 1);
        if (entry === undefined) return;
        // Stored, its broadcast not delivered yet: shown at its seq now and
        // replaced by the broadcast (same key) when it comes.
        this.insertStored(ch, { ...entry, status: "sent", seq: outcome.seq, messageId: outcome.messageId });
        ch.byMessage.set(outcome.messageId, key);
        return;
      }
      case "applied":
        this.setSend({ id, channelId, op, status: "applied", seq: outcome.seq, messageId: before?.messageId ?? null, error: null });
        return;
      case "failed": {
        const error: SendError = { reason: outcome.reason, code: outcome.code, message: outcome.message };
        this.setSend({ id, channelId, op, status: "failed", seq: null, messageId: before?.messageId ?? null, error });
        const entry = ch.unsent[index];
        if (entry !== undefined) ch.unsent[index] = { ...entry, status: "failed", error };
        return;
      }
    }
  }

  private onLog(ch: ChannelState, event: Extract<AppEvent, { type: "log" }>["event"]): void {
    switch (event.type) {
      case "message": {
        const own = `c:${event.clientMsgId}`;
        const mine = (this.userId !== null && event.authorId === this.userId)
          || ch.storedKeys.has(own) || ch.unsent.some((m) => m.key === own);
        const key = mine ? own : `m:${event.messageId}`;
        const item: MessageItem = {
          kind: "message", key, status: "sent", seq: event.seq, messageId: event.messageId,
          authorId: event.authorId, clientMsgId: event.clientMsgId, body: event.body, ts: event.ts,
          mine, edited: false, deleted: false, error: null,
        };
        if (mine && ch.unsent.length > 0) ch.unsent = ch.unsent.filter((m) => m.key !== own);
        ch.byMessage.set(event.messageId, key);
        this.insertStored(ch, item);
        return;
      }
      case "updated":
        this.editStored(ch, event.messageId, (m) => ({ ...m, body: event.body ?? m.body, edited: true }));
        return;
      case "deleted":
        this.editStored(ch, event.messageId, (m) => ({ ...m, body: undefined, deleted: true }));
        return;
    }
  }

  private editStored(ch: ChannelState, messageId: string, f: (m: MessageItem) => MessageItem): void {
    const key = ch.byMessage.get(messageId);
    if (key === undefined) return;
    // Edits usually touch recent messages: search from the end.
    for (let i = ch.stored.length - 1; i >= 0; i--) {
      const item = ch.stored[i];
      if (item?.kind === "message" && item.key === key) {
        ch.stored[i] = f(item);
        return;
      }
    }
  }

  /** Puts an item at its seq (replacing one with the same key); trims the oldest past the cap. */
  private insertStored(ch: ChannelState, item: TimelineItem): void {
    const stored = ch.stored;
    const seq = seqOf(item);
    // In-order delivery appends; a pre-placed own message is replaced in place.
    let i = stored.length;
    while (i > 0) {
      const prev = stored[i - 1];
      if (prev === undefined || seqOf(prev) < seq) break;
      if (prev.key === item.key) {
        stored[i - 1] = item;
        return;
      }
      i -= 1;
    }
    if (i === stored.length) stored.push(item);
    else stored.splice(i, 0, item);
    ch.storedKeys.add(item.key);
    const max = this.limits.maxMessagesPerChannel;
    if (stored.length > max + Math.ceil(max / 4)) {
      for (const gone of stored.splice(0, stored.length - max)) {
        ch.storedKeys.delete(gone.key);
        if (gone.kind === "message" && gone.messageId !== null) ch.byMessage.delete(gone.messageId);
      }
    }
  }

  private channelSnapshot(channelId: string, ch: ChannelState): ChannelSnapshot {
    if (ch.snapshot === undefined) {
      const max = this.limits.maxMessagesPerChannel;
      const stored = ch.stored.length > max ? ch.stored.slice(ch.stored.length - max) : ch.stored;
      ch.snapshot = {
        channelId,
        subscription: ch.subscription,
        items: [...stored, ...ch.unsent],
        members: [...ch.members].sort(),
        typing: [...ch.typing].sort(),
        reads: new Map(ch.reads),
        epoch: ch.epoch,
        lastSeq: ch.lastSeq,
      };
    }
    return ch.snapshot;
  }
}
