/**
 * Where the outbox survives a page reload, and which tab owns it.
 *
 * The machine exports its unsent entries as a JSON snapshot after every
 * change; the owning tab saves it and, on start, restores it. Only one tab
 * owns an outbox (`navigator.locks`): two tabs restoring the same entries
 * would both send them (harmless, the server dedupes, but both would show
 * them). A tab that does not own the outbox waits in line and takes it
 * over, restoring what the closed tab left, when that tab goes away.
 */

/** A place for outbox snapshots (JSON text), by key. */
export interface OutboxStorage {
  /** The snapshot saved under `key`, or `null`. */
  load(key: string): Promise<string | null>;
  /** Replaces the snapshot under `key`. */
  save(key: string, snapshot: string): Promise<void>;
  /** Releases connections (called by `client.close()`). */
  close?(): void;
}

/** Keeps snapshots in memory: survives a rebuilt machine, not a reload. */
export class MemoryOutboxStorage implements OutboxStorage {
  private readonly data = new Map<string, string>();

  load(key: string): Promise<string | null> {
    return Promise.resolve(this.data.get(key) ?? null);
  }

  save(key: string, snapshot: string): Promise<void> {
    this.data.set(key, snapshot);
    return Promise.resolve();
  }
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("indexeddb request failed"));
  });
}

/** Snapshots in IndexedDB (database `lockstep`, store `outbox`). */
export class IndexedDbOutboxStorage implements OutboxStorage {
  private db: Promise<IDBDatabase> | undefined;

  /** `factory`: `indexedDB` (the default) or e.g. `fake-indexeddb` in Node tests. */
  constructor(
    private readonly factory: IDBFactory = globalThis.indexedDB,
    private readonly dbName = "lockstep",
  ) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = this.factory.open(this.dbName, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains("outbox")) req.result.createObjectStore("outbox");
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error("indexeddb open failed"));
    });
    return this.db;
  }

  async load(key: string): Promise<string | null> {
    const db = await this.open();
    const value: unknown = await request(db.transaction("outbox", "readonly").objectStore("outbox").get(key));
    return typeof value === "string" ? value : null;
  }

  async save(key: string, snapshot: string): Promise<void> {
    const db = await this.open();
    const tx = db.transaction("outbox", "readwrite");
    tx.objectStore("outbox").put(snapshot, key);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error("indexeddb write failed"));
      tx.onabort = () => reject(tx.error ?? new Error("indexeddb write aborted"));
    });
  }

  close(): void {
    const db = this.db;
    this.db = undefined;
    void db?.then((d) => d.close(), () => undefined);
  }
}

/** The part of `navigator.locks` used here. */
export interface LockManagerLike {
  request(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>;
}

/** The page's lock manager, if it has one. */
export function defaultLocks(): LockManagerLike | null {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  return nav?.locks ?? null;
}

/**
 * Owns an outbox key for as long as the client lives: at once when free
 * (`start` resolves `true`), or later, when the tab that holds it goes
 * away (`onAcquired` then runs).
 */
export class Ownership {
  private release: (() => void) | undefined;
  private readonly abort = new AbortController();
  private owned = false;

  constructor(private readonly locks: LockManagerLike | null, private readonly name: string) {}

  /** Tries to take the lock now; if another tab has it, waits in line. */
  async start(onAcquired: () => void): Promise<boolean> {
    if (this.locks === null) {
      this.owned = true;
      return true;
    }
    const locks = this.locks;
    const held = new Promise<void>((resolve) => {
      this.release = resolve;
    });
    const now = await new Promise<boolean>((resolve) => {
      void locks.request(this.name, { ifAvailable: true }, async (lock) => {
        resolve(lock !== null);
        if (lock !== null) await held;
      });
    });
    if (now) {
      this.owned = true;
      return true;
    }
    locks.request(this.name, { signal: this.abort.signal }, async () => {
      this.owned = true;
      onAcquired();
      await held;
    }).catch(() => undefined);
    return false;
  }

  /** Whether this client owns the outbox now. */
  get isOwner(): boolean {
    return this.owned;
  }

  /** Lets go of the lock, or leaves the line. */
  stop(): void {
    this.owned = false;
    this.abort.abort();
    this.release?.();
  }
}
