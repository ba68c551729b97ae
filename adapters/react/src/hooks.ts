/**
 * The hooks: each reads the client's store with `useSyncExternalStore`, so
 * every component of a render sees the same snapshot (no tearing), and a
 * component re-renders only when the part it reads changed (the store's
 * snapshots keep their identity until then). The channel hooks hold their
 * channel while mounted: subscribed on mount, left on unmount.
 */
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import {
  type ChannelSnapshot, type ClientSnapshot, LockstepClient, LockstepError, type MessageItem, type OutcomeOut,
  type SendHandle, type StateOut, type SubscriptionOut, type TimelineItem,
} from "@lockstep/client";

import { useLockstep } from "./provider.js";

const IDLE: StateOut = { name: "idle" };
const NONE: readonly never[] = Object.freeze([]);
const NO_READS: ReadonlyMap<string, number> = new Map();
const noop = (): void => {};
const subscribeNothing = (): (() => void) => noop;

/** Reads `select(snapshot)` of the provider's client, `fallback` before there is one. */
function useSnapshot<T>(select: (s: ClientSnapshot) => T, fallback: T): T {
  const { client } = useLockstep();
  const subscribe = useMemo(() => (client === null ? subscribeNothing : client.store.subscribe), [client]);
  const get = (): T => (client === null ? fallback : select(client.store.getSnapshot()));
  return useSyncExternalStore(subscribe, get, get);
}

/** Holds `channelId` while the component is mounted; the error if it cannot be subscribed. */
function useHold(channelId: string): LockstepError | null {
  const { channels } = useLockstep();
  const [error, setError] = useState<{ channelId: string; error: LockstepError } | null>(null);
  useEffect(() => {
    if (channels === null) return undefined;
    try {
      const release = channels.acquire(channelId);
      setError(null);
      return release;
    } catch (e) {
      setError({ channelId, error: asError(e) });
      return undefined;
    }
  }, [channels, channelId]);
  return error !== null && error.channelId === channelId ? error.error : null;
}

function asError(e: unknown): LockstepError {
  return e instanceof LockstepError ? e : new LockstepError("invalid", String(e), { cause: e });
}

/** The connection, as `useConnection` gives it. */
export interface ConnectionView {
  /** `idle`, `connecting`, `connected`, `reconnecting`, `suspended`, `closed`, `failed`, with their details. */
  readonly state: StateOut;
  /** Who the server says we are, once connected. */
  readonly userId: string | null;
  /** The client (`null` while it is created, or when creating it failed). */
  readonly client: LockstepClient | null;
  /** Why the client could not be created. */
  readonly error: LockstepError | null;
}

/** The connection state, re-rendered on every change of it. */
export function useConnection(): ConnectionView {
  const { client, error } = useLockstep();
  const state = useSnapshot((s) => s.connection, IDLE);
  const userId = useSnapshot((s) => s.userId, null);
  return useMemo(() => ({ state, userId, client, error }), [state, userId, client, error]);
}

/** Options of {@link useChannel}. */
export interface UseChannelOptions {
  /**
   * Throw to the nearest error boundary (e.g. {@link LockstepErrorBoundary})
   * when the subscription is refused for good (`forbidden`, ...) or a
   * command is refused at once (`outbox_full`, `invalid`, ...), instead of
   * showing `status: "failed"` and throwing to the caller. Default false.
   */
  readonly throwOnError?: boolean;
}

/** A channel, as `useChannel` gives it. */
export interface ChannelView {
  /** `loading` before the client exists; then the subscription's status. */
  readonly status: SubscriptionOut["status"] | "loading";
  /** The refusal code when `status` is `failed`. */
  readonly code: string | null;
  /** The channel's snapshot (`undefined` before the client exists). */
  readonly channel: ChannelSnapshot | undefined;
  /** Messages and markers in order, one's own pending ones last. */
  readonly items: readonly TimelineItem[];
  /** Only the messages of `items`. */
  readonly messages: readonly MessageItem[];
  /** Who is present, sorted. */
  readonly members: readonly string[];
  /** Sends a message: shown at once as pending; resolves once. */
  send(body: unknown): SendHandle;
  /** Edits one's own message. */
  edit(messageId: string, body: unknown): SendHandle;
  /** Deletes one's own message. */
  remove(messageId: string): SendHandle;
  /** Marks read up to `upTo` (default: the last message delivered). */
  markRead(upTo?: number): void;
  /** Shows (or hides) our typing indicator; call on each keystroke. */
  setTyping(active: boolean): void;
  /** Removes a failed entry from the view. */
  dismiss(id: string): void;
  /** Leaves and joins again (after a refusal that may have been lifted). */
  retry(): void;
}

/** A handle for a command refused at once and routed to the error boundary. */
function refusedHandle(error: LockstepError): SendHandle {
  const outcome: OutcomeOut = { status: "failed", reason: error.kind, code: null, message: error.message };
  return { id: "", outcome: Promise.resolve(outcome) };
}

/**
 * A channel: subscribed while the component is mounted (left when the last
 * component holding it unmounts), its state and messages, and the commands
 * on it. With `throwOnError`, failures go to the nearest error boundary.
 */
export function useChannel(channelId: string, options: UseChannelOptions = {}): ChannelView {
  const { client } = useLockstep();
  const holdError = useHold(channelId);
  const channel = useSnapshot((s) => s.channels.get(channelId), undefined);
  const [thrown, setThrown] = useState<LockstepError | null>(null);
  const throwOnError = options.throwOnError === true;

  const run = useCallback(<T,>(f: (c: LockstepClient) => T, refused: (e: LockstepError) => T): T => {
    if (client === null) {
      const e = new LockstepError("closed", "the client is not ready yet");
      if (!throwOnError) throw e;
      setThrown(e);
      return refused(e);
    }
    try {
      return f(client);
    } catch (e) {
      const error = asError(e);
      if (!throwOnError) throw error;
      setThrown(error);
      return refused(error);
    }
  }, [client, throwOnError]);

  const view = useMemo<ChannelView>(() => {
    const items = channel?.items ?? NONE;
    const subscription = channel?.subscription;
    return {
      status: client === null ? "loading" : subscription?.status ?? "unsubscribed",
      code: subscription?.status === "failed" ? subscription.code : null,
      channel,
      items,
      messages: items.filter((i): i is MessageItem => i.kind === "message"),
      members: channel?.members ?? NONE,
      send: (body) => run((c) => c.send(channelId, body), refusedHandle),
      edit: (messageId, body) => run((c) => c.update(channelId, messageId, body), refusedHandle),
      remove: (messageId) => run((c) => c.delete(channelId, messageId), refusedHandle),
      markRead: (upTo) => {
        const seq = upTo ?? channel?.lastSeq ?? 0;
        if (seq > 0) run((c) => c.markRead(channelId, seq), noop);
      },
      setTyping: (active) => run((c) => c.setTyping(channelId, active), noop),
      dismiss: (id) => client?.dismiss(channelId, id),
      retry: () => run((c) => {
        c.unsubscribe(channelId);
        c.subscribe(channelId);
      }, noop),
    };
  }, [channel, channelId, client, run]);

  if (throwOnError) {
    if (thrown !== null) throw thrown;
    if (holdError !== null) throw holdError;
    if (channel?.subscription.status === "failed") {
      throw new LockstepError(
        "subscription_failed",
        `joining ${channelId} was refused: ${channel.subscription.code}`,
      );
    }
  }
  return view;
}

/** Who is present in `channelId` (sorted), live; holds the channel while mounted. */
export function usePresence(channelId: string): readonly string[] {
  useHold(channelId);
  return useSnapshot((s) => s.channels.get(channelId)?.members ?? NONE, NONE);
}

/** Who else is typing in `channelId` (sorted; never oneself), live; holds the channel while mounted. */
export function useTyping(channelId: string): readonly string[] {
  useHold(channelId);
  const typing = useSnapshot((s) => s.channels.get(channelId)?.typing ?? NONE, NONE);
  const me = useSnapshot((s) => s.userId, null);
  return useMemo(() => (me === null || !typing.includes(me) ? typing : typing.filter((u) => u !== me)), [typing, me]);
}

/** Read receipts, as `useReadReceipts` gives them. */
export interface ReadReceipts {
  /** Each user's read watermark (the highest seq they marked read). */
  readonly reads: ReadonlyMap<string, number>;
  /** Who (else) has read the message at `seq`, sorted. */
  seenBy(seq: number): string[];
}

/** Read watermarks in `channelId`, live; holds the channel while mounted. */
export function useReadReceipts(channelId: string): ReadReceipts {
  useHold(channelId);
  const reads = useSnapshot((s) => s.channels.get(channelId)?.reads ?? NO_READS, NO_READS);
  const me = useSnapshot((s) => s.userId, null);
  return useMemo(() => ({
    reads,
    seenBy: (seq: number) => [...reads].filter(([user, upTo]) => user !== me && upTo >= seq).map(([user]) => user).sort(),
  }), [reads, me]);
}
