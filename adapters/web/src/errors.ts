/**
 * Why a command was refused at once (nothing changed), or what went wrong
 * in the background (reported through `onError`).
 */
export type LockstepErrorKind =
  /** An argument did not parse: channel id, body, snapshot, option. */
  | "invalid"
  /** The outbox holds `outboxMax` entries already. */
  | "outbox_full"
  /** The channel is not subscribed. */
  | "not_subscribed"
  /** The channel's subscription was refused for good (e.g. forbidden). */
  | "subscription_failed"
  /** The client is closed. */
  | "closed"
  /** More channels than `maxChannels`. */
  | "too_many_channels"
  /** A persisted outbox of an unknown format version. */
  | "version"
  /** The WebAssembly machine panicked; it was rebuilt from the outbox. */
  | "panic"
  /** Persisting or loading the outbox failed. */
  | "storage"
  /** The token provider threw. */
  | "token";

/** A typed error: match on `kind`, show `message`. */
export class LockstepError extends Error {
  /** What kind of failure this is. */
  readonly kind: LockstepErrorKind;

  constructor(kind: LockstepErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LockstepError";
    this.kind = kind;
  }
}

const KINDS: ReadonlySet<string> = new Set<LockstepErrorKind>([
  "invalid", "outbox_full", "not_subscribed", "subscription_failed", "closed",
  "too_many_channels", "version", "panic", "storage", "token",
]);

/** The kind named by the machine, or `invalid` for one this version does not know. */
export function errorKind(kind: string): LockstepErrorKind {
  return KINDS.has(kind) ? (kind as LockstepErrorKind) : "invalid";
}
