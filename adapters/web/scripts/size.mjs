// Prints the raw and gzip sizes of what a browser downloads from this
// package (the wasm module, its glue, the compiled TypeScript; not
// socket.io-client, which apps bundle anyway) and fails above the budget.
//
//   node scripts/size.mjs        (after scripts/build.mjs)
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/**
 * The budget, gzipped KiB, for wasm + glue + TypeScript together: issue
 * 14's aim (it stands at 97.8 KiB). The client's frames are read and
 * written by a small hand JSON reader instead of serde, the allocator is
 * talc, and the JavaScript is one minified file (see README "Size and
 * speed").
 */
export const BUDGET_KIB = Number(process.env.LOCKSTEP_WEB_BUDGET_KIB ?? 100);

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const files = [
  join("gen", "lockstep.wasm"),
  join("gen", "glue.js"),
  ...readdirSync(join(pkg, "dist")).filter((f) => f.endsWith(".js")).sort().map((f) => join("dist", f)),
];
let raw = 0;
let gz = 0;
const kib = (n) => (n / 1024).toFixed(1).padStart(7);
console.log(`${"file".padEnd(24)} ${"raw KiB".padStart(7)} ${"gzip KiB".padStart(8)}`);
for (const f of files) {
  const bytes = readFileSync(join(pkg, f));
  const zipped = gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gz += zipped;
  console.log(`${f.padEnd(24)} ${kib(bytes.length)} ${kib(zipped).padStart(8)}`);
}
console.log(`${"total".padEnd(24)} ${kib(raw)} ${kib(gz).padStart(8)}   (budget ${BUDGET_KIB} KiB gzipped)`);
if (gz > BUDGET_KIB * 1024) {
  console.error(`error: ${(gz / 1024).toFixed(1)} KiB gzipped is over the ${BUDGET_KIB} KiB budget`);
  process.exit(1);
}
