/**
 * `@lockstep/client`: reliable realtime channels for chat apps in the
 * browser. The lockstep client machine (Rust, in WebAssembly) driven by
 * socket.io-client: ordered exactly-once delivery across reconnects,
 * optimistic sends resolved once, an outbox that survives a reload,
 * presence, typing and read receipts, in a store a UI subscribes to.
 *
 * ```ts
 * const client = await createClient({ url, getToken, channels: ["general"] });
 * client.store.subscribe(render);
 * client.send("general", { text: "hi" });
 * ```
 */
export { createClient, LockstepClient } from "./client.js";
export type { ClientInspection, ClientOptions, SendHandle } from "./client.js";
export { LATENCY_BOUNDS_MS, Meter, bucketOf } from "./meter.js";
export type { ClientMetrics, Report } from "./meter.js";
export { LockstepError } from "./errors.js";
export type { LockstepErrorKind } from "./errors.js";
export { IndexedDbOutboxStorage, MemoryOutboxStorage } from "./storage.js";
export type { LockManagerLike, OutboxStorage } from "./storage.js";
export { Store } from "./store.js";
export type {
  ChannelSnapshot, ClientSnapshot, MessageItem, ResetItem, SendError, SendRecord, TimelineItem, TruncatedItem,
} from "./store.js";
export { MainTicker, WorkerTicker } from "./timer.js";
export type { Ticker, TickerChoice, WorkerLike } from "./timer.js";
export { RawPacket, SocketIoTransport, rawEventParser } from "./transport.js";
export type { Transport, TransportFactory, TransportSink } from "./transport.js";
export { loadWasm } from "./wasm.js";
export type { WasmSource } from "./wasm.js";
export type {
  AckRef, AppEvent, Batch, CommandOut, ErrorCode, Inspection, LogOut, OutcomeOut, StateOut, SubscriptionOut,
  TransmitOut, WebConfig,
} from "../gen/lockstep_wasm.js";
