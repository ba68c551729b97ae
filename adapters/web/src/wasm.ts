/**
 * Loading the WebAssembly module once and starting instances of it: one
 * per machine, and a fresh one when a panic ended the previous.
 */
import { createModule, type WasmModule } from "../gen/glue.js";
import type { Batch, Inspection, WasmClient } from "../gen/lockstep_wasm.js";

/** Where the module comes from: bytes, a compiled module, or a URL to fetch. */
export type WasmSource = BufferSource | WebAssembly.Module | URL | string;

let defaultModule: Promise<WebAssembly.Module> | undefined;

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

async function compileFrom(source: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (typeof source === "string" || source instanceof URL) {
    const url = typeof source === "string" ? new URL(source, globalThis.location?.href) : source;
    if (url.protocol === "file:" && isNode()) {
      // A specifier computed at run time keeps bundlers from following it
      // (a plain constant would be folded into the import by a minifier).
      const fsName = ["node:fs", "promises"].join("/");
      const fs = (await import(fsName)) as { readFile(path: URL): Promise<Uint8Array> };
      const bytes = await fs.readFile(url);
      return WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    }
    const response = await fetch(url);
    if (!response.ok) throw new Error(`fetching ${url.href}: ${response.status}`);
    if (typeof WebAssembly.compileStreaming === "function"
      && response.headers.get("content-type") === "application/wasm") {
      return WebAssembly.compileStreaming(response);
    }
    return WebAssembly.compile(await response.arrayBuffer());
  }
  return WebAssembly.compile(source);
}

/**
 * The compiled module: from `source`, or the package's own `gen/lockstep.wasm`
 * (compiled once per page or process).
 */
export function loadWasm(source?: WasmSource): Promise<WebAssembly.Module> {
  if (source !== undefined) return compileFrom(source);
  defaultModule ??= compileFrom(new URL("../gen/lockstep.wasm", import.meta.url));
  return defaultModule;
}

/** One live instance and the machine in it. */
export class Instance {
  private readonly bindings: WasmModule;
  private readonly machine: WasmClient;

  /**
   * A fresh instance of `module` (its own memory) running a machine with
   * `optionsJson`, seeded from `crypto.getRandomValues`.
   */
  constructor(module: WebAssembly.Module, optionsJson: string) {
    this.bindings = createModule();
    this.bindings.initSync({ module });
    const seed = crypto.getRandomValues(new BigUint64Array(1))[0] ?? 0n;
    this.machine = new this.bindings.WasmClient(optionsJson, seed);
  }

  /** Runs one call on the machine and parses its batch. Throws when the instance died. */
  call(f: (m: WasmClient) => string): Batch {
    return JSON.parse(f(this.machine)) as Batch;
  }

  /** The machine itself, for calls that return no batch. */
  get raw(): WasmClient {
    return this.machine;
  }

  /** What the machine still holds. */
  inspect(): Inspection {
    return JSON.parse(this.machine.inspect()) as Inspection;
  }

  /** Why the instance died, if a Rust panic ended it. */
  lastPanic(): string | undefined {
    try {
      return this.bindings.lastPanic();
    } catch {
      return undefined;
    }
  }

  /** Frees the machine (a live instance only). */
  free(): void {
    try {
      this.machine.free();
    } catch {
      // A dead instance cannot free; its memory goes with it.
    }
  }
}
