// What the browser tests share: a real `sealpost serve` on SQLite serving this build (--web-dir),
// Debian's Chromium through playwright-core with a fresh profile, the Rust CLI, axe, screenshots.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";
import { startServer as startSdkServer } from "../../clients/js/test/support/server.mjs";

export const webRoot = fileURLToPath(new URL("..", import.meta.url));
const repo = join(webRoot, "..");
export const bin = process.env.SEALPOST_BIN ?? join(repo, "target/release/sealpost");
export const shots = join(webRoot, "test-artifacts/screenshots");
const run = promisify(execFile);

/** The SDK's test server (a real `sealpost serve` on SQLite, INTERACTIVE limits), serving `web/dist`. */
export function startServer({ accessTokenTtl = 900 } = {}) {
  process.env.SEALPOST_BIN = bin;
  return startSdkServer({ accessTokenTtl, extra: ["--web-dir", join(webRoot, "dist")] });
}

/** The Rust CLI as `who` (a state folder of its own under the server's folder). */
export async function cli(server, who, password, ...args) {
  const env = {
    ...process.env,
    SEALPOST_HOME: join(server.dir, `cli-${who}`),
    SEALPOST_SERVER: server.url,
    SEALPOST_PASSWORD: password,
  };
  const { stdout } = await run(bin, args, { env, timeout: 120000 });
  return stdout;
}

const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A browser with a fresh profile (its own --user-data-dir), which records every request body the
 * pages send (HTTP by route interception, WebSocket frames too), and every console error.
 */
export async function openBrowser() {
  const profile = await mkdtemp(join(tmpdir(), "sealpost-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 1000, height: 760 },
  });
  const sent = [];
  const errors = [];
  await context.route("**/*", async (route) => {
    const body = route.request().postDataBuffer();
    sent.push({ url: route.request().url(), method: route.request().method(), body: body ? body.toString("latin1") : "" });
    await route.continue();
  });
  const watch = (page) => {
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
    page.on("websocket", (ws) => ws.on("framesent", (f) => sent.push({ url: ws.url(), method: "WS", body: String(f.payload) })));
  };
  context.on("page", watch);
  for (const p of context.pages()) watch(p);
  return {
    context,
    sent,
    errors,
    async page() {
      const existing = context.pages().find((p) => p.url() === "about:blank");
      return existing ?? (await context.newPage());
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

export const axeRuns = { count: 0, screens: [] };

/** axe on the page as it is (WCAG 2.1 A and AA): the violations, for the test to assert empty. */
export async function axe(page, screen) {
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  axeRuns.count += 1;
  axeRuns.screens.push(screen);
  return result.violations.map((v) => `${screen}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** A full-page screenshot under web/test-artifacts/screenshots. */
export async function shot(page, name) {
  await mkdir(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

let counter = 0;
export function email(name) {
  return `${name}.${process.pid}.${Date.now()}.${counter++}@example.com`;
}
