// The SDK in a real browser (headless Chromium), built by Vite with no plugins, served under the CSP the
// README documents, same-origin with a real sealpost serve behind a small proxy (API and WebSocket).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer, request } from "node:http";
import { connect } from "node:net";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";
import { startServer } from "../support/server.mjs";

const CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'";
const TYPES = { ".html": "text/html", ".js": "text/javascript" };
const chromium = ["chromium", "chromium-browser", "google-chrome"].find((c) => {
  try {
    execFileSync("which", [c], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
});

let api;
let site;
let web;
let out;
before(async () => {
  assert.ok(chromium, "no Chromium on PATH (apt-get install chromium)");
  api = await startServer();
  site = await mkdtemp(join(tmpdir(), "sealpost-browser-"));
  out = join(site, "dist");
  await build({
    root: fileURLToPath(new URL("./app/", import.meta.url)),
    logLevel: "warn",
    build: { outDir: out, emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  });
  const backend = new URL(api.url);
  web = createServer(async (req, res) => {
    if (req.url.startsWith("/v1/") || req.url === "/healthz") {
      const upstream = request(
        {
          host: backend.hostname,
          port: backend.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (r) => {
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        },
      );
      req.pipe(upstream);
      return;
    }
    if (req.url === "/result") {
      let body = "";
      for await (const chunk of req) body += chunk;
      res.end();
      web.emit("result", JSON.parse(body));
      return;
    }
    const path = normalize(join(out, req.url === "/" ? "index.html" : req.url.split("?")[0]));
    if (!path.startsWith(out)) return void res.writeHead(403).end();
    try {
      const data = await readFile(path);
      res.writeHead(200, {
        "content-type": TYPES[extname(path)] ?? "application/octet-stream",
        "content-security-policy": CSP,
      });
      res.end(data);
    } catch {
      res.writeHead(404).end();
    }
  });
  web.on("upgrade", (req, socket, head) => {
    const up = connect(Number(backend.port), backend.hostname, () => {
      const lines = [
        `${req.method} ${req.url} HTTP/1.1`,
        ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`),
        "",
        "",
      ];
      up.write(lines.join("\r\n"));
      up.write(head);
      up.pipe(socket).pipe(up);
    });
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
  });
  await new Promise((r) => web.listen(0, "127.0.0.1", r));
});

after(async () => {
  web?.close();
  await api?.stop();
  if (site) await rm(site, { recursive: true, force: true });
});

test("Chromium: register (Argon2id in a Worker), send, stream, resume from IndexedDB, logout — under the CSP, with no violation", async () => {
  const result = new Promise((resolve) => web.once("result", resolve));
  const profile = join(site, "profile");
  const browser = spawn(
    chromium,
    [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      `http://127.0.0.1:${web.address().port}/`,
    ],
    { stdio: "ignore" },
  );
  try {
    const r = await result;
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(r.violations, []);
    assert.equal(r.recoveryKey, true);
    assert.equal(r.workers, 2, "one Worker per derivation");
    assert.equal(r.text, "Hello from the browser");
    assert.equal(r.from, true);
    assert.equal(r.databases, 2);
    assert.equal(r.resumed, true);
    assert.deepEqual(r.listed, ["Hello from the browser"]);
    assert.equal(r.safety, true);
    assert.equal(r.bobDatabaseAfterLogout, false);
  } finally {
    browser.kill("SIGKILL");
  }
});
