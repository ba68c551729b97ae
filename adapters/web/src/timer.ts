/**
 * The driver's single timer, re-armed from the machine's deadline after
 * every call. Background tabs throttle main-thread timers (to about once a
 * minute in Chrome), which would make timeouts fire late and heartbeats
 * fail falsely; a Web Worker's timers are not throttled that way, so the
 * timer runs in one where the page allows it.
 */

/** A single re-armable timer. */
export interface Ticker {
  /** Fires `onFire` once after `delayMs` (replacing any earlier arming); `null` disarms. */
  arm(delayMs: number | null): void;
  /** Stops for good and releases the timer (and the worker). */
  dispose(): void;
  /** Timers armed now (0 or 1), for leak checks. */
  armed(): number;
  /** `worker` or `main`: where the timer runs. */
  readonly kind: "worker" | "main";
}

/** How to build a ticker: `worker` (when available, else main), `main`, or a factory. */
export type TickerChoice = "worker" | "main" | ((onFire: () => void) => Ticker);

/** A main-thread `setTimeout`. */
export class MainTicker implements Ticker {
  readonly kind = "main" as const;
  private handle: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly onFire: () => void) {}

  arm(delayMs: number | null): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
    if (delayMs === null) return;
    this.handle = setTimeout(() => {
      this.handle = undefined;
      this.onFire();
    }, Math.max(0, delayMs));
  }

  dispose(): void {
    this.arm(null);
  }

  armed(): number {
    return this.handle === undefined ? 0 : 1;
  }
}

/** The worker's whole program: one timer, armed by messages (ms; negative disarms). */
export const WORKER_SOURCE =
  "let t;onmessage=(e)=>{clearTimeout(t);t=undefined;if(e.data>=0)t=setTimeout(()=>postMessage(0),e.data)};";

/** The part of the `Worker` constructor this module uses. */
export interface WorkerLike {
  postMessage(message: number): void;
  terminate(): void;
  onmessage: ((this: WorkerLike, ev: MessageEvent) => unknown) | null;
}

/** A timer in a dedicated Web Worker (made from a Blob URL). */
export class WorkerTicker implements Ticker {
  readonly kind = "worker" as const;
  private readonly worker: WorkerLike;
  private readonly url: string | undefined;
  private pending = false;
  private disposed = false;

  /** Throws when workers are unavailable or forbidden (e.g. by a CSP). */
  constructor(
    private readonly onFire: () => void,
    create: (url: string) => WorkerLike = (url) => new Worker(url) as unknown as WorkerLike,
  ) {
    this.url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    try {
      this.worker = create(this.url);
    } catch (e) {
      URL.revokeObjectURL(this.url);
      throw e;
    }
    this.worker.onmessage = () => {
      if (this.disposed || !this.pending) return;
      this.pending = false;
      this.onFire();
    };
  }

  arm(delayMs: number | null): void {
    if (this.disposed) return;
    this.pending = delayMs !== null;
    this.worker.postMessage(delayMs === null ? -1 : Math.max(0, delayMs));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pending = false;
    this.worker.terminate();
    if (this.url !== undefined) URL.revokeObjectURL(this.url);
  }

  armed(): number {
    return this.pending ? 1 : 0;
  }
}

/** Builds the ticker chosen, falling back to the main thread when a worker cannot start. */
export function makeTicker(choice: TickerChoice, onFire: () => void): Ticker {
  if (typeof choice === "function") return choice(onFire);
  const workers = typeof Worker === "function" && typeof Blob === "function"
    && typeof URL.createObjectURL === "function";
  if (choice === "worker" && workers) {
    try {
      return new WorkerTicker(onFire);
    } catch {
      // A content security policy may forbid blob: workers.
    }
  }
  return new MainTicker(onFire);
}
