/**
 * Sockets for the machine: one socket.io-client connection per generation,
 * socket.io's own reconnection off (the machine owns reconnects). Every
 * report names the generation it came from, so a late callback of an old
 * socket is ignored by the machine instead of racing the new one.
 */
import { Manager, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { Decoder, Encoder } from "socket.io-parser";
import type { AckRef } from "../gen/lockstep_wasm.js";

/** What a transport reports back; the client feeds it to the machine. */
export interface TransportSink {
  /** The Engine.IO connection is up; `token` is for the namespace connect. */
  opened(generation: number, token: string): void;
  /** The socket closed or could not open. */
  closed(generation: number, reason: string): void;
  /** The namespace connect was refused (`connect_error`). */
  connectError(generation: number, message: string): void;
  /** A server event arrived (its first argument). */
  event(generation: number, name: string, payload: unknown): void;
  /**
   * A server event arrived as its packet's JSON text, `["name", payload]`
   * (the default transport: nothing parsed or encoded on the way; the
   * machine decodes it).
   */
  packet(generation: number, text: string): void;
  /** The ack of request `ack.req` arrived (its first argument). */
  ack(generation: number, ack: AckRef, reply: unknown): void;
}

/** Socket work the machine asks for, already mapped to Socket.IO. */
export interface Transport {
  /** Opens the connection of a new socket. */
  open(generation: number): void;
  /** Connects the namespace with `auth: { token }`. */
  connect(generation: number, token: string): void;
  /** Emits `name` with `payload`, with an ack callback when `ack` is set. */
  emit(generation: number, name: string, payload: unknown, ack: AckRef | null): void;
  /** Closes one socket; its later events are dropped. */
  close(generation: number): void;
  /** Closes every socket (teardown, or a rebuilt machine). */
  closeAll(): void;
  /** Sockets open now, for leak checks. */
  live(): number;
}

/** Builds a transport reporting to `sink`; the default is {@link SocketIoTransport}. */
export type TransportFactory = (sink: TransportSink) => Transport;

/** What {@link SocketIoTransport} needs to know. */
export interface SocketIoSettings {
  /** The server's URL (`http(s)://host:port`). */
  url: string;
  /** Gives the token for each connection attempt (refreshed every time). */
  token: () => Promise<string>;
  /** Longest wait for the Engine.IO connection (the machine's connect timeout). */
  connectTimeout: number;
  /** Extra socket.io-client options (path, transports, withCredentials, ...). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

interface Link {
  manager: Manager;
  socket: Socket | undefined;
  closed: boolean;
}

/** An event packet kept as its JSON text, in place of its arguments. */
export class RawPacket {
  constructor(
    /** `["name", payload, ...]`: the packet after its type. */
    readonly text: string,
  ) {}
}

/** Event names socket.io keeps for itself: never taken as raw packets. */
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);
/** An event packet of the main namespace without an ack id: `2["name",...`, the name free of escapes. */
const EVENT_PACKET = /^2\["([^"\\]*)"/;

/**
 * socket.io-parser's decoder, except that an event packet of the main
 * namespace (the only kind lockstep's server sends) keeps its JSON text:
 * its arguments become `[name, RawPacket]`, and the machine decodes the
 * text once instead of JavaScript parsing it and encoding it again.
 * Everything else (binary packets, acks, other namespaces, reserved
 * names) is decoded as usual.
 */
class RawEventDecoder extends Decoder {
  override add(obj: unknown): void {
    const reconstructing = (this as unknown as { reconstructor?: unknown }).reconstructor;
    if (typeof obj === "string" && !reconstructing) {
      const name = EVENT_PACKET.exec(obj)?.[1];
      if (name !== undefined && !RESERVED.has(name)) {
        this.emitReserved("decoded", { type: 2, nsp: "/", data: [name, new RawPacket(obj.slice(1))] });
        return;
      }
    }
    super.add(obj);
  }
}

/** The parser the default transport gives socket.io-client (`parser` in the Manager's options). */
export const rawEventParser = { Encoder, Decoder: RawEventDecoder };

/** The default transport: socket.io-client 4.x. */
export class SocketIoTransport implements Transport {
  private readonly links = new Map<number, Link>();

  constructor(private readonly settings: SocketIoSettings, private readonly sink: TransportSink) {}

  open(generation: number): void {
    const manager = new Manager(this.settings.url, {
      transports: ["websocket"],
      parser: rawEventParser,
      ...this.settings.socketOptions,
      // The machine owns reconnects, timeouts and connecting.
      reconnection: false,
      autoConnect: false,
      timeout: this.settings.connectTimeout,
    });
    const link: Link = { manager, socket: undefined, closed: false };
    this.links.set(generation, link);
    const token = this.settings.token();
    // An unused rejection would be reported as unhandled before open ends.
    token.catch(() => undefined);
    // socket.io-client closes the manager (synchronously) before it emits
    // `connect_error` for a refused namespace connect: report the close a
    // microtask later, so the refusal (permanent for `unauthorized`) comes first.
    manager.on("close", (reason: string) => queueMicrotask(
      () => this.report(link, () => this.sink.closed(generation, reason)),
    ));
    manager.open((err?: Error) => {
      if (err !== undefined) {
        this.report(link, () => this.sink.closed(generation, `connection failed: ${err.message}`));
        return;
      }
      token.then(
        (t) => this.report(link, () => this.sink.opened(generation, t)),
        (e: unknown) => this.report(link, () => this.sink.closed(generation, `token provider failed: ${String(e)}`)),
      );
    });
  }

  connect(generation: number, token: string): void {
    const link = this.links.get(generation);
    if (link === undefined || link.closed) return;
    const socket = link.manager.socket("/", { auth: { token } });
    link.socket = socket;
    socket.on("connect_error", (err: Error) => this.report(link, () => this.sink.connectError(generation, err.message)));
    socket.on("disconnect", (reason: string) => this.report(link, () => this.sink.closed(generation, reason)));
    socket.onAny((name: string, payload: unknown) => this.report(link, () => {
      if (payload instanceof RawPacket) this.sink.packet(generation, payload.text);
      else this.sink.event(generation, name, payload);
    }));
    socket.connect();
  }

  emit(generation: number, name: string, payload: unknown, ack: AckRef | null): void {
    const link = this.links.get(generation);
    const socket = link?.socket;
    if (link === undefined || link.closed || socket === undefined) return;
    if (ack === null) {
      socket.emit(name, payload);
    } else {
      socket.emit(name, payload, (reply: unknown) => this.report(link, () => this.sink.ack(generation, ack, reply)));
    }
  }

  close(generation: number): void {
    const link = this.links.get(generation);
    if (link === undefined) return;
    this.links.delete(generation);
    link.closed = true;
    // Handlers off first: nothing of this socket reaches the machine again.
    const socket = link.socket;
    if (socket !== undefined) {
      socket.offAny();
      socket.removeAllListeners();
      socket.disconnect();
    }
    link.manager.removeAllListeners();
    // `disconnect` closes the manager once its last socket is gone; a
    // socket that never connected leaves the engine to close here.
    link.manager.engine?.close();
  }

  closeAll(): void {
    for (const generation of [...this.links.keys()]) this.close(generation);
  }

  live(): number {
    return this.links.size;
  }

  private report(link: Link, f: () => void): void {
    if (!link.closed) f();
  }
}

