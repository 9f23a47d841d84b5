// A real `sealpost serve` on SQLite for the integration tests: a fresh database and secrets file
// in a temporary folder, port 0 (the port is read from the server's "listening" log line), the
// test setup's KDF limits (INTERACTIVE) and limits loosened for one machine's test run.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { createClient, memoryStore } from "../../dist/index.js";
import { serverBin } from "./paths.mjs";

/** Starts a server; `accessTokenTtl` in seconds; `extra` more arguments. */
export async function startServer({ accessTokenTtl = 900, extra = [] } = {}) {
  const bin = serverBin();
  if (!existsSync(bin))
    throw new Error(
      `no server binary at ${bin}: build it (cargo build --release -p sealpost) or set SEALPOST_BIN`,
    );
  const dir = await mkdtemp(join(tmpdir(), "sealpost-js-it-"));
  const args = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--database",
    `sqlite://${join(dir, "db.sqlite")}`,
    "--secrets-file",
    join(dir, "secrets"),
    "--kdf-opslimit",
    "2",
    "--kdf-memlimit",
    "67108864",
    "--access-token-ttl",
    String(accessTokenTtl),
    "--rate-per-address",
    "100000",
    "--rate-per-email",
    "100000",
    "--log",
    "info",
    ...extra,
  ];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  // Never left behind, even when a test run ends early (process.exit, a failed before hook).
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  const log = [];
  const url = await new Promise((resolve, reject) => {
    const onLine = (line) => {
      const clean = line.replace(/\x1b\[[0-9;]*m/g, "");
      log.push(clean);
      const m = /listening.*address=(\S+)/.exec(clean);
      if (m) resolve(`http://${m[1]}`);
    };
    createInterface({ input: child.stdout }).on("line", onLine);
    createInterface({ input: child.stderr }).on("line", onLine);
    child.once("exit", (code) =>
      reject(new Error(`sealpost serve exited with ${code}:\n${log.join("\n")}`)),
    );
    child.once("error", reject);
  });
  return {
    url,
    dir,
    log,
    async stop() {
      process.off("exit", reap);
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A WebSocket class for the SDK that remembers every socket it made, so that a test can cut one. */
export function trackedWebSocket() {
  const sockets = [];
  class Tracked extends WebSocket {
    constructor(url) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket: Tracked, sockets };
}

let counter = 0;
/** A unique email for this run. */
export function email(name) {
  return `${name}.${process.pid}.${Date.now()}.${counter++}@example.com`;
}

/** A client of `server` with a fresh memory store (or the given one), Node's ws, and short reconnect delays. */
export function client(server, options = {}) {
  return createClient({
    server: server.url,
    store: options.store ?? memoryStore(),
    WebSocket: options.WebSocket ?? WebSocket,
    timing: { reconnectDelayMs: 50, reconnectMaxMs: 200, ...options.timing },
    ...options.extra,
  });
}

/** The next value an event gives (with the unsubscribe done). */
export function nextEvent(c, event, predicate = () => true) {
  return new Promise((resolve) => {
    const off = c.on(event, (v) => {
      if (predicate(v)) {
        off();
        resolve(v);
      }
    });
  });
}

/** Takes `n` items from an async iterator (without closing it). */
export async function take(iterator, n) {
  const out = [];
  while (out.length < n) {
    const r = await iterator.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}
