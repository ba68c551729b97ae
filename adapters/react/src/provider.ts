/**
 * `<LockstepProvider>`: owns one `@lockstep/client` for the components
 * under it. The client is created when the provider mounts and closed
 * when it unmounts (no socket, timer or listener left running); under
 * StrictMode's mount, unmount, mount, the first client is closed before it
 * ever connects and only the second one connects. Channels are counted by
 * the hooks that use them: subscribed while at least one is mounted.
 */
import {
  createElement, createContext, useContext, useEffect, useRef, useState, type ReactNode,
} from "react";
import { type ClientOptions, LockstepClient, LockstepError, createClient } from "@lockstep/client";

/** What the provider gives the hooks. */
export interface LockstepContextValue {
  /** The client, once created (`null` while loading, after a failure, after unmount). */
  readonly client: LockstepClient | null;
  /** Why the client could not be created (bad options, the module failed to load). */
  readonly error: LockstepError | null;
  /** The channels the hooks hold. */
  readonly channels: ChannelRefs | null;
}

const LockstepContext = createContext<LockstepContextValue | null>(null);

/** The provider's props. */
export interface LockstepProviderProps {
  /**
   * The client's options (`url`, `token` or `getToken`, ...), read once,
   * when the provider mounts. To start over with others (another user),
   * give the provider a new `key`.
   */
  readonly options: ClientOptions;
  /** Creates the client; default `createClient` (tests and custom loading replace it). */
  readonly create?: (options: ClientOptions) => Promise<LockstepClient>;
  readonly children?: ReactNode;
}

/**
 * Which channels the mounted hooks hold, so a channel two components use
 * stays subscribed until the last one unmounts, and a hook that unmounts
 * and mounts again in the same commit (StrictMode, a re-keyed list) does
 * not leave and re-join.
 */
export class ChannelRefs {
  private readonly counts = new Map<string, number>();
  /** Channels subscribed by the client's own `channels` option: never left by a hook. */
  private readonly pinned: ReadonlySet<string>;
  private closed = false;

  constructor(private readonly client: LockstepClient, pinned: readonly string[]) {
    this.pinned = new Set(pinned);
  }

  /**
   * Holds `channelId` (subscribing on the first hold); returns the release.
   * Throws the client's `LockstepError` when the channel cannot be
   * subscribed (an invalid id, too many channels).
   */
  acquire(channelId: string): () => void {
    const n = this.counts.get(channelId) ?? 0;
    if (n === 0 && !this.pinned.has(channelId) && !this.wanted(channelId)) {
      this.client.subscribe(channelId);
    }
    this.counts.set(channelId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release(channelId);
    };
  }

  /** Holds now, for leak checks. */
  held(): number {
    return this.counts.size;
  }

  /** No more unsubscribing: the client is closing. */
  close(): void {
    this.closed = true;
  }

  /** Leaves `channelId` (after the commit) when no hook holds it any more. */
  private release(channelId: string): void {
    const n = (this.counts.get(channelId) ?? 1) - 1;
    if (n > 0) {
      this.counts.set(channelId, n);
      return;
    }
    this.counts.delete(channelId);
    if (this.pinned.has(channelId)) return;
    // A hook mounting again in the same commit holds it again first.
    queueMicrotask(() => {
      if (this.closed || this.counts.has(channelId) || !this.wanted(channelId)) return;
      try {
        this.client.unsubscribe(channelId);
      } catch {
        // Closed meanwhile: nothing to leave.
      }
    });
  }

  /** Whether the client wants the channel now (the store shows it). */
  private wanted(channelId: string): boolean {
    return this.client.store.getSnapshot().channels.has(channelId);
  }
}

/** Creates, connects and closes the one client; see the module's doc. */
export function LockstepProvider(props: LockstepProviderProps): ReactNode {
  const { options, create = createClient, children } = props;
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const [value, setValue] = useState<LockstepContextValue>({ client: null, error: null, channels: null });

  useEffect(() => {
    const opts = optionsRef.current;
    let cancelled = false;
    let live: { client: LockstepClient; channels: ChannelRefs } | null = null;
    // Created without connecting: a client StrictMode unmounts at once
    // never opens a socket.
    create({ ...opts, autoConnect: false }).then((client) => {
      if (cancelled) {
        void client.close();
        return;
      }
      const channels = new ChannelRefs(client, opts.channels ?? []);
      live = { client, channels };
      if (opts.autoConnect !== false) client.connect();
      setValue({ client, error: null, channels });
    }, (e: unknown) => {
      if (cancelled) return;
      const error = e instanceof LockstepError ? e : new LockstepError("invalid", String(e), { cause: e });
      setValue({ client: null, error, channels: null });
    });
    return () => {
      cancelled = true;
      if (live !== null) {
        live.channels.close();
        void live.client.close();
        live = null;
        setValue({ client: null, error: null, channels: null });
      }
    };
  }, [create]);

  return createElement(LockstepContext.Provider, { value }, children);
}

/** The provider's value; throws outside a `<LockstepProvider>`. */
export function useLockstep(): LockstepContextValue {
  const value = useContext(LockstepContext);
  if (value === null) throw new Error("useLockstep and the lockstep hooks must be used inside <LockstepProvider>");
  return value;
}
