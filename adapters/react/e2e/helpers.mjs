// Shared set-up of the end-to-end tests: headless Chromium (Debian's
// `chromium` package, driven by playwright-core: no browser download),
// the real lockstep-server serving the built demo page, bounded waits.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

export { startProxy, startServer, until } from "../../web/test/helpers.mjs";

const here = dirname(fileURLToPath(import.meta.url));
/** The built demo page (demo/build.mjs). */
export const demoDir = join(here, "..", "demo", "dist");
/** Screenshots of the final states (git-ignored). */
export const artifacts = join(here, "artifacts");
/** Debian's Chromium; `CHROMIUM` overrides. */
export const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** Launches headless Chromium, failing clearly when it or the demo is missing. */
export async function launch() {
  if (!existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} is missing: install Debian's chromium package (.ci/run does: apt-get install chromium)`);
  }
  if (!existsSync(join(demoDir, "index.html"))) {
    throw new Error(`${demoDir} has no demo: run scripts/demo-build (scripts/test does)`);
  }
  mkdirSync(artifacts, { recursive: true });
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--headless",
    ],
  });
}

/** Waits for `fn(arg)` to be truthy in `page`, at most `timeout` ms; fails naming `what`. */
export async function waitIn(page, what, fn, arg, timeout = 15_000) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 20 });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${e.message.split("\n")[0]}`);
  }
}

/** The values of the Prometheus exposition at `url`, by series (`name{labels}`). */
export async function scrape(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const series = new Map();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const at = line.lastIndexOf(" ");
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

/** The sum of every series of `name` whose labels contain all of `labels` (`key="value"` strings). */
export function sum(series, name, ...labels) {
  let total = 0;
  for (const [key, value] of series) {
    const bare = key.split("{")[0];
    if (bare !== name) continue;
    if (labels.every((l) => key.includes(l))) total += value;
  }
  return total;
}
