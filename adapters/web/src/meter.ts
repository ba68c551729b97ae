/**
 * What the client counts for the PRD's monitoring list, and the deltas it
 * reports to the server over its own connection (`client:metrics`, see
 * docs/PROTOCOL.md), so the server's `/metrics` shows what only browsers
 * see: connect attempts, reconnections and how they recovered, ack
 * latency, commit-to-render latency.
 */
import type { AppEvent, Batch, StateOut } from "../gen/lockstep_wasm.js";

/** Upper bounds (ms) of the latency buckets; a last bucket holds the rest. Fixed by the protocol. */
export const LATENCY_BOUNDS_MS: readonly number[] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000];
/** Largest count of one field in one report (the server refuses more); the rest waits for the next. */
const REPORT_COUNT_MAX = 10_000;
/** Error labels in one report, at most. */
const REPORT_LABELS_MAX = 16;
/** Error labels kept at all (a label is a server code or a client reason: a small set). */
const ERROR_LABELS_MAX = 64;

/** Counters a frontend team charts (the PRD's monitoring list). */
export interface ClientMetrics {
  /** Connection attempts started. */
  connectAttempts: number;
  /** Attempts that reached `connected`. */
  connects: number;
  /** Connections after the first (successful reconnects). */
  reconnects: number;
  /** Reconnections after which every channel resumed from its position. */
  resumed: number;
  /** Reconnections after which some channel had a gap (`truncated`) or a `reset`. */
  fresh: number;
  /** Times a live connection was lost. */
  disconnects: number;
  /** Channel re-joins after a reconnect, by how they recovered. */
  recoveries: { recovered: number; truncated: number; reset: number };
  /** Joins that succeeded. */
  subscriptionsSucceeded: number;
  /** Joins refused for good. */
  subscriptionsFailed: number;
  /** Messages stored. */
  sent: number;
  /** Edits and deletes stored. */
  applied: number;
  /** Sends, edits and deletes given up. */
  failed: number;
  /** Log events handed to the app. */
  delivered: number;
  /** Milliseconds from `send()` to its outcome: count, mean, max. */
  sendLatency: { count: number; meanMs: number; maxMs: number };
  /** `send()` to its ack, counted per {@link LATENCY_BOUNDS_MS} bucket (one more for the rest). */
  ackLatencyBuckets: number[];
  /** A live message's commit (`ts`, the server's clock) to this store, per bucket (clock skew included). */
  deliveryLatencyBuckets: number[];
  /** Failures by code (or reason): failed sends and refused joins. */
  errors: Record<string, number>;
  /** Frames from the server that broke the contract (ignored). */
  protocolErrors: number;
  /** Rust panics survived (the machine was rebuilt each time). */
  panics: number;
  /** Reports sent to the server. */
  reportsSent: number;
}

/** The `client:metrics` payload (version 1). */
export interface Report {
  v: 1;
  connectAttempts: number;
  connects: number;
  resumed: number;
  fresh: number;
  disconnects: number;
  recovered: number;
  truncated: number;
  reset: number;
  joinsOk: number;
  joinsFailed: number;
  sendsOk: number;
  sendsFailed: number;
  errors: Record<string, number>;
  ackLatency: number[];
  deliveryLatency: number[];
}

/** The bucket of a latency in ms. */
export function bucketOf(ms: number): number {
  const i = LATENCY_BOUNDS_MS.findIndex((bound) => ms <= bound);
  return i < 0 ? LATENCY_BOUNDS_MS.length : i;
}

const buckets = (): number[] => new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);

function fresh(): ClientMetrics {
  return {
    connectAttempts: 0, connects: 0, reconnects: 0, resumed: 0, fresh: 0, disconnects: 0,
    recoveries: { recovered: 0, truncated: 0, reset: 0 },
    subscriptionsSucceeded: 0, subscriptionsFailed: 0, sent: 0, applied: 0, failed: 0, delivered: 0,
    sendLatency: { count: 0, meanMs: 0, maxMs: 0 }, ackLatencyBuckets: buckets(), deliveryLatencyBuckets: buckets(),
    errors: {}, protocolErrors: 0, panics: 0, reportsSent: 0,
  };
}

function copy(m: ClientMetrics): ClientMetrics {
  return {
    ...m,
    recoveries: { ...m.recoveries },
    sendLatency: { ...m.sendLatency },
    ackLatencyBuckets: [...m.ackLatencyBuckets],
    deliveryLatencyBuckets: [...m.deliveryLatencyBuckets],
    errors: { ...m.errors },
  };
}

/** A reconnection whose channels are still re-joining. */
interface Recovery {
  /** Channels not yet subscribed again. */
  waiting: Set<string>;
  /** Channels that came back with a gap or a reset. */
  lossy: Set<string>;
  /** Channels back in the batch being counted. */
  back: Set<string>;
}

/** Counts the machine's events and turns them into report deltas. */
export class Meter {
  private readonly m = fresh();
  /** What the server was told so far. */
  private readonly told = fresh();
  private readonly startedAt = new Map<string, number>();
  private recovery: Recovery | null = null;
  /** Something may have changed since the last report. */
  private changed = false;

  /** A copy of the counters. */
  metrics(): ClientMetrics {
    return copy(this.m);
  }

  /** Counts a panic survived. */
  panicked(): void {
    this.m.panics += 1;
    this.count("panic");
    this.changed = true;
  }

  /**
   * Counts one batch of events. `before` is the connection state before
   * it; `rejoining` gives the channels a reconnection re-joins.
   */
  observe(events: Batch["events"], before: StateOut, rejoining: () => ReadonlySet<string>): void {
    this.changed = true;
    let previous = before.name;
    // Events of a join reply (backlog, recovery) are not live deliveries.
    const joined = new Set<string>();
    for (const e of events) if (e.type === "subscription") joined.add(e.channelId);
    for (const e of events) {
      this.one(e, previous, rejoining, joined);
      if (e.type === "state") previous = e.state.name;
    }
    this.settleRecovery();
  }

  private one(e: AppEvent, previous: StateOut["name"], rejoining: () => ReadonlySet<string>, joined: ReadonlySet<string>): void {
    const m = this.m;
    switch (e.type) {
      case "state":
        if (e.state.name === "connecting") m.connectAttempts += 1;
        if (e.state.name === "connected") {
          if (m.connects > 0) {
            m.reconnects += 1;
            this.recovery = { waiting: new Set(rejoining()), lossy: new Set(), back: new Set() };
          }
          m.connects += 1;
        }
        if (previous === "connected" && e.state.name !== "connected") {
          if (e.state.name === "reconnecting") m.disconnects += 1;
          // A reconnection cut short before its channels were back is not judged.
          this.recovery = null;
        }
        return;
      case "subscription":
        if (e.state.status === "subscribed") {
          m.subscriptionsSucceeded += 1;
          this.rejoined(e.channelId);
        }
        if (e.state.status === "failed") {
          m.subscriptionsFailed += 1;
          this.count(e.state.code);
          this.rejoined(e.channelId);
        }
        return;
      case "truncated":
        this.lossy(e.channelId, "truncated");
        return;
      case "reset":
        this.lossy(e.channelId, "reset");
        return;
      case "log":
        m.delivered += 1;
        if (e.event.type === "message" && !joined.has(e.channelId)) {
          m.deliveryLatencyBuckets[bucketOf(Math.max(0, Date.now() - e.event.ts))]! += 1;
        }
        return;
      case "pending":
        if (!this.startedAt.has(e.id)) this.startedAt.set(e.id, performance.now());
        return;
      case "outcome": {
        if (e.outcome.status === "sent") m.sent += 1;
        if (e.outcome.status === "applied") m.applied += 1;
        if (e.outcome.status === "failed") {
          m.failed += 1;
          this.count(e.outcome.code ?? e.outcome.reason);
        }
        const start = this.startedAt.get(e.id);
        this.startedAt.delete(e.id);
        if (start !== undefined && e.outcome.status !== "failed") {
          const ms = performance.now() - start;
          const l = m.sendLatency;
          l.meanMs = (l.meanMs * l.count + ms) / (l.count + 1);
          l.count += 1;
          l.maxMs = Math.max(l.maxMs, ms);
          m.ackLatencyBuckets[bucketOf(ms)]! += 1;
        }
        return;
      }
      case "protocol":
        m.protocolErrors += 1;
        this.count("protocol");
        return;
      default:
        return;
    }
  }

  private count(key: string): void {
    const errors = this.m.errors;
    if (errors[key] === undefined && Object.keys(errors).length >= ERROR_LABELS_MAX) key = "other";
    errors[key] = (errors[key] ?? 0) + 1;
  }

  private lossy(channelId: string, kind: "truncated" | "reset"): void {
    const r = this.recovery;
    if (r === null || r.lossy.has(channelId)) return;
    r.lossy.add(channelId);
    this.m.recoveries[kind] += 1;
  }

  private rejoined(channelId: string): void {
    if (this.recovery?.waiting.has(channelId) === true) this.recovery.back.add(channelId);
  }

  /**
   * At the end of a batch: the channels back in it are judged (a gap or a
   * reset comes in the same batch as its join reply), and once every
   * channel is back, the reconnection.
   */
  private settleRecovery(): void {
    const r = this.recovery;
    if (r === null) return;
    for (const channelId of r.back) {
      r.waiting.delete(channelId);
      if (!r.lossy.has(channelId)) this.m.recoveries.recovered += 1;
    }
    r.back.clear();
    if (r.waiting.size > 0) return;
    if (r.lossy.size === 0) this.m.resumed += 1;
    else this.m.fresh += 1;
    this.recovery = null;
  }

  /** Whether anything happened that the server was not told. */
  dirty(): boolean {
    if (this.changed && this.report(false) === null) this.changed = false;
    return this.changed;
  }

  /**
   * The next report: what changed since the last one, each count capped
   * at what the server accepts (the rest goes in the next). `null` when
   * nothing changed. With `take`, the report counts as told.
   */
  report(take = true): Report | null {
    const m = this.m;
    const t = this.told;
    let any = false;
    const delta = (now: number, before: number): number => {
      const d = Math.min(Math.max(0, now - before), REPORT_COUNT_MAX);
      if (d > 0) any = true;
      return d;
    };
    const list = (now: number[], before: number[]): number[] => {
      let room = REPORT_COUNT_MAX;
      return now.map((n, i) => {
        const d = Math.min(Math.max(0, n - (before[i] ?? 0)), room);
        room -= d;
        if (d > 0) any = true;
        return d;
      });
    };
    const errors: Record<string, number> = {};
    for (const [key, n] of Object.entries(m.errors)) {
      if (Object.keys(errors).length >= REPORT_LABELS_MAX) break;
      const d = delta(n, t.errors[key] ?? 0);
      if (d > 0) errors[key] = d;
    }
    const report: Report = {
      v: 1,
      connectAttempts: delta(m.connectAttempts, t.connectAttempts),
      connects: delta(m.connects, t.connects),
      resumed: delta(m.resumed, t.resumed),
      fresh: delta(m.fresh, t.fresh),
      disconnects: delta(m.disconnects, t.disconnects),
      recovered: delta(m.recoveries.recovered, t.recoveries.recovered),
      truncated: delta(m.recoveries.truncated, t.recoveries.truncated),
      reset: delta(m.recoveries.reset, t.recoveries.reset),
      joinsOk: delta(m.subscriptionsSucceeded, t.subscriptionsSucceeded),
      joinsFailed: delta(m.subscriptionsFailed, t.subscriptionsFailed),
      sendsOk: delta(m.sent, t.sent),
      sendsFailed: delta(m.failed, t.failed),
      errors,
      ackLatency: list(m.ackLatencyBuckets, t.ackLatencyBuckets),
      deliveryLatency: list(m.deliveryLatencyBuckets, t.deliveryLatencyBuckets),
    };
    if (!any) return null;
    if (take) {
      t.connectAttempts += report.connectAttempts;
      t.connects += report.connects;
      t.resumed += report.resumed;
      t.fresh += report.fresh;
      t.disconnects += report.disconnects;
      t.recoveries.recovered += report.recovered;
      t.recoveries.truncated += report.truncated;
      t.recoveries.reset += report.reset;
      t.subscriptionsSucceeded += report.joinsOk;
      t.subscriptionsFailed += report.joinsFailed;
      t.sent += report.sendsOk;
      t.failed += report.sendsFailed;
      for (const [key, n] of Object.entries(report.errors)) t.errors[key] = (t.errors[key] ?? 0) + n;
      report.ackLatency.forEach((n, i) => { t.ackLatencyBuckets[i]! += n; });
      report.deliveryLatency.forEach((n, i) => { t.deliveryLatencyBuckets[i]! += n; });
      m.reportsSent += 1;
    }
    return report;
  }
}
