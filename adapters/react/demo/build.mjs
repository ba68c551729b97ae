// Builds the demo chat page into demo/dist (git-ignored), which
// `lockstep-server --dev` serves at `/`: the app bundled with esbuild
// (React, @lockstep/react, @lockstep/client, socket.io-client; minified),
// the page, its style, and the client's WebAssembly module.
//
//   node demo/build.mjs     (after the web package and this one are built;
//                            scripts/demo-build does everything)
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const demo = dirname(fileURLToPath(import.meta.url));
const out = join(demo, "dist");
const wasm = join(demo, "..", "..", "web", "gen", "lockstep.wasm");
if (!existsSync(wasm)) {
  throw new Error(`${wasm} is missing: build the web package first (scripts/demo-build does)`);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(demo, "src", "main.tsx")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  outfile: join(out, "main.js"),
  logLevel: "warning",
});
copyFileSync(join(demo, "index.html"), join(out, "index.html"));
copyFileSync(join(demo, "style.css"), join(out, "style.css"));
copyFileSync(wasm, join(out, "lockstep.wasm"));
const kib = (f) => (statSync(join(out, f)).size / 1024).toFixed(0);
console.log(`demo built in ${out}: main.js ${kib("main.js")} KiB, lockstep.wasm ${kib("lockstep.wasm")} KiB`);
