// Builds the package: the wasm module (cargo's `wasm-release` profile, the
// `quiet` feature, then binaryen's wasm-opt), its glue (the pinned
// wasm-bindgen CLI), then the TypeScript (tsc --strict: declarations with
// their doc comments); the glue is minified and the JavaScript bundled
// into one minified file by esbuild (what a browser downloads; the `.d.ts`
// keep the docs).
//
//   node scripts/build.mjs            # everything
//   node scripts/build.mjs --ts-only  # only tsc (gen/ must exist)
//   node scripts/build.mjs --names    # the module keeps its function names, for
//                                     # `twiggy top gen/lockstep.wasm` and CPU profiles
//                                     # (its own target dir; not for shipping)
//
// The glue wasm-bindgen writes keeps one instance in module-level state;
// it is wrapped here in `createModule()` so the package can start a fresh
// instance after a Rust panic ended one (a panic aborts: the instance is
// unusable for good). The wrapping is checked: a glue of another shape
// fails the build instead of producing a broken package.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync, transformSync } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const root = join(pkg, "..", "..");
const gen = join(pkg, "gen");
// The one pin: adapters/wasm/Cargo.toml's exact wasm-bindgen version.
const WASM_BINDGEN_VERSION = /^wasm-bindgen = \{ version = "=([0-9.]+)"/m
  .exec(readFileSync(join(root, "adapters", "wasm", "Cargo.toml"), "utf8"))?.[1];

/**
 * JavaScript minified (esbuild, the tool the React demo bundles with): no
 * comments or spaces, local names shortened, exports and the ES2022
 * syntax kept. Doc comments live on in the `.d.ts` files.
 */
function minified(js) {
  return transformSync(js, { minify: true, format: "esm", target: "es2022", legalComments: "none" }).code;
}

function run(cmd, args, cwd) {
  execFileSync(cmd, args, { cwd, stdio: "inherit" });
}

/**
 * Binaryen's optimizer over the module (the `binaryen` devDependency:
 * wasm-opt compiled to JavaScript, nothing to download). `-O2` without its
 * inliner: the inliner's copies of small functions make the module smaller
 * raw but 10 KiB larger gzipped; `-O2` came out smaller gzipped than `-Oz`
 * or `-Os` (140.5 against 141.2 and 140.7 KiB) and as fast or faster.
 * `LOCKSTEP_WASM_OPT` overrides the passes, for measuring. The features are
 * the ones rustc's wasm32 target emits.
 */
function wasmOpt(input, output, names) {
  const flags = (process.env.LOCKSTEP_WASM_OPT ?? "-O2 -sp inlining-optimizing").split(" ").filter(Boolean);
  run(join(pkg, "node_modules", ".bin", "wasm-opt"), [
    ...flags,
    "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext",
    "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue",
    ...(names ? ["--debuginfo"] : []),
    input, "-o", output,
  ], pkg);
}

function buildWasm() {
  if (WASM_BINDGEN_VERSION === undefined) throw new Error("no exact wasm-bindgen pin in adapters/wasm/Cargo.toml");
  const version = execFileSync("wasm-bindgen", ["--version"], { encoding: "utf8" }).trim();
  if (!version.endsWith(` ${WASM_BINDGEN_VERSION}`)) {
    throw new Error(`wasm-bindgen ${WASM_BINDGEN_VERSION} is required (found "${version}"); run scripts/web-setup`);
  }
  const names = process.argv.includes("--names");
  const targetDir = join(root, "target", ...(names ? ["wasm-names"] : []));
  execFileSync("cargo", [
    "build", "-p", "lockstep-wasm", "--target", "wasm32-unknown-unknown",
    "--profile", "wasm-release", "--features", "quiet", "--target-dir", targetDir,
  ], {
    cwd: root,
    stdio: "inherit",
    env: names ? { ...process.env, CARGO_PROFILE_WASM_RELEASE_STRIP: "false" } : process.env,
  });
  const raw = join(gen, "raw");
  rmSync(gen, { recursive: true, force: true });
  mkdirSync(raw, { recursive: true });
  const wasm = join(targetDir, "wasm32-unknown-unknown", "wasm-release", "lockstep_wasm.wasm");
  run("wasm-bindgen", ["--target", "web", "--out-dir", raw, wasm], root);

  const glue = readFileSync(join(raw, "lockstep_wasm.js"), "utf8");
  const body = glue
    .replace(/^\/\* @ts-self-types=.*\*\/\n/m, "")
    .replace(/^export class /gm, "class ")
    .replace(/^export function /gm, "function ")
    .replace(/^export \{ initSync, __wbg_init as default \};\n?/m, "");
  if (/^export /m.test(body) || !/^class WasmClient /m.test(body) || !/^function initSync\(/m.test(body)) {
    throw new Error("the wasm-bindgen glue has an unexpected shape: update scripts/build.mjs");
  }
  const wrapped = [
    "export function createModule() {",
    body,
    "    return { WasmClient, lastPanic, initSync };",
    "}",
    "",
  ].join("\n");
  writeFileSync(join(gen, "glue.js"), [
    "// Generated by scripts/build.mjs from the wasm-bindgen glue: each call",
    "// gets its own module state, so a new instance can replace a dead one.",
    minified(wrapped),
  ].join("\n"));
  writeFileSync(join(gen, "glue.d.ts"), [
    "// Generated by scripts/build.mjs.",
    'import type { WasmClient, lastPanic, initSync } from "./lockstep_wasm.js";',
    "/** One instance's bindings. */",
    "export interface WasmModule {",
    "    WasmClient: typeof WasmClient;",
    "    lastPanic: typeof lastPanic;",
    "    initSync: typeof initSync;",
    "}",
    "/** Fresh module state: call `initSync({ module })` on it to instantiate. */",
    "export declare function createModule(): WasmModule;",
    "",
  ].join("\n"));
  copyFileSync(join(raw, "lockstep_wasm.d.ts"), join(gen, "lockstep_wasm.d.ts"));
  wasmOpt(join(raw, "lockstep_wasm_bg.wasm"), join(gen, "lockstep.wasm"), names);
  rmSync(raw, { recursive: true, force: true });
}

if (!process.argv.includes("--ts-only")) {
  buildWasm();
}
rmSync(join(pkg, "dist"), { recursive: true, force: true });
// Declarations with their doc comments for editors; JavaScript minified
// for browsers (what scripts/size.mjs weighs).
const tsc = join(pkg, "node_modules", ".bin", "tsc");
run(tsc, ["-p", ".", "--emitDeclarationOnly"], pkg);
run(tsc, ["-p", ".", "--declaration", "false", "--removeComments"], pkg);
// One file: the package's modules bundled into `dist/index.js` (its
// dependencies, the glue and Node's built-ins stay imports), which
// compresses better than nine. The per-module `.d.ts` files stay.
const modules = readdirSync(join(pkg, "dist")).filter((f) => f.endsWith(".js"));
const bundle = buildSync({
  entryPoints: [join(pkg, "dist", "index.js")],
  bundle: true,
  write: false,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  external: ["socket.io-client", "socket.io-parser", "../gen/glue.js", "node:*"],
});
for (const f of modules) rmSync(join(pkg, "dist", f));
writeFileSync(join(pkg, "dist", "index.js"), bundle.outputFiles[0].contents);
