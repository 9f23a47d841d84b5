// Packaging smoke test: npm pack, installed into a scratch folder as a user would, imported from Node
// (all three entries), and bundled for browsers by esbuild and by Vite with no plugins and no config.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pkgDir } from "../support/paths.mjs";

const run = promisify(execFile);
let scratch;
let tarball;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "sealpost-pack-"));
  const { stdout } = await run("npm", ["pack", "--silent", "--pack-destination", scratch], {
    cwd: pkgDir,
  });
  tarball = join(scratch, stdout.trim().split("\n").pop());
  await writeFile(
    join(scratch, "package.json"),
    JSON.stringify({ name: "scratch", private: true, type: "module" }),
  );
  await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], {
    cwd: scratch,
    timeout: 300000,
  });
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

test("the tarball holds dist and the README, not the sources or tests", async () => {
  const { stdout } = await run("tar", ["tzf", tarball]);
  const files = stdout.trim().split("\n");
  assert.ok(files.includes("package/dist/index.js"));
  assert.ok(files.includes("package/dist/index.d.ts"));
  assert.ok(files.includes("package/dist/kdf-worker.js"));
  assert.ok(files.includes("package/README.md"));
  assert.ok(!files.some((f) => f.startsWith("package/src/") || f.startsWith("package/test/")));
});

test("Node imports every entry from the installed package and a sealed message opens", async () => {
  await writeFile(
    join(scratch, "node-check.mjs"),
    `import { createClient, memoryStore, SealpostError } from "@sealpost/sdk";
import * as p from "@sealpost/sdk/protocol";
import { fileStore } from "@sealpost/sdk/node";
await p.ready();
const a = p.generateKeyPair(), b = p.generateKeyPair();
const ida = "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5e", idb = "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5f";
const ct = p.seal(p.textPayload(ida, idb, "packaged"), b.publicKey, a.secretKey);
const opened = p.open(ct, { me: idb, publicKey: b.publicKey, secretKey: b.secretKey, senderPublicKey: a.publicKey, from: ida, to: idb });
const c = createClient({ server: "https://example.com", store: memoryStore() });
let refused = false;
try { createClient({ server: "http://example.com", store: memoryStore() }); } catch (e) { refused = e instanceof SealpostError && e.code === "insecure_transport"; }
console.log(JSON.stringify({ text: opened.body, server: c.server, refused, fileStore: typeof fileStore }));
`,
  );
  const { stdout } = await run(process.execPath, ["node-check.mjs"], { cwd: scratch });
  assert.deepEqual(JSON.parse(stdout), {
    text: "packaged",
    server: "https://example.com",
    refused: true,
    fileStore: "function",
  });
});

const app = `import { createClient, indexedDBStore } from "@sealpost/sdk";
import { ready, safetyNumber } from "@sealpost/sdk/protocol";
export const client = createClient({ server: location.origin, store: indexedDBStore() });
ready().then(() => console.log(typeof safetyNumber));
`;

test("esbuild bundles it for browsers with no node: import", async () => {
  await writeFile(join(scratch, "app.js"), app);
  const esbuild = join(pkgDir, "node_modules/.bin/esbuild");
  await run(
    esbuild,
    [
      "app.js",
      "--bundle",
      "--format=esm",
      "--platform=browser",
      "--minify",
      "--outfile=out/app.js",
      "--metafile=out/meta.json",
    ],
    { cwd: scratch },
  );
  const meta = JSON.parse(await readFile(join(scratch, "out/meta.json"), "utf8"));
  const imports = Object.values(meta.inputs).flatMap((i) => i.imports.map((x) => x.path));
  assert.ok(!imports.some((p) => p.startsWith("node:")), imports.join(" "));
  assert.ok(Object.keys(meta.inputs).some((p) => p.includes("libsodium-sumo")));
  // The worker is a second entry point for esbuild (it does not follow new URL(…, import.meta.url)).
  await run(
    esbuild,
    [
      "node_modules/@sealpost/sdk/dist/kdf-worker.js",
      "--bundle",
      "--format=esm",
      "--platform=browser",
      "--minify",
      "--outfile=out/kdf-worker.js",
    ],
    { cwd: scratch },
  );
  assert.ok(existsSync(join(scratch, "out/kdf-worker.js")));
});

test("Vite builds it with no plugins and no config, the KDF worker emitted as its own chunk", async () => {
  const site = join(scratch, "site");
  await run("mkdir", ["-p", site]);
  await writeFile(
    join(site, "index.html"),
    `<!doctype html><script type="module" src="./main.js"></script>`,
  );
  await writeFile(join(site, "main.js"), app);
  const vite = join(pkgDir, "node_modules/.bin/vite");
  await run(vite, ["build", "--logLevel", "warn"], {
    cwd: site,
    env: { ...process.env, NODE_PATH: join(scratch, "node_modules") },
    timeout: 300000,
  });
  const assets = await readdir(join(site, "dist/assets"));
  assert.ok(
    assets.some((f) => f.startsWith("kdf-worker") && f.endsWith(".js")),
    assets.join(" "),
  );
  assert.ok(
    assets.some((f) => f.startsWith("index") && f.endsWith(".js")),
    assets.join(" "),
  );
});

test("TypeScript finds the types of every entry through the types condition (NodeNext and Bundler resolution)", async () => {
  await writeFile(
    join(scratch, "consumer.ts"),
    `import { createClient, memoryStore, SealpostError, type Received } from "@sealpost/sdk";
import { ready, safetyNumber, type Kdf } from "@sealpost/sdk/protocol";
import { fileStore } from "@sealpost/sdk/node";
const c = createClient({ server: "https://example.com", store: memoryStore() });
const kdf: Kdf = { alg: "argon2id13", salt: "AAAAAAAAAAAAAAAAAAAAAA", opslimit: 2, memlimit: 67108864 };
async function main(): Promise<void> {
  await ready();
  const n: string = safetyNumber("0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5e", new Uint8Array(32), "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5f", new Uint8Array(32));
  for await (const r of c.messages.stream()) {
    const x: Received = r;
    if (!x.ok) { const e: SealpostError = x.error; console.log(e.code, n, kdf, fileStore); }
  }
}
void main;
`,
  );
  const tsc = join(pkgDir, "node_modules/.bin/tsc");
  for (const resolution of [
    ["--module", "nodenext", "--moduleResolution", "nodenext"],
    ["--module", "esnext", "--moduleResolution", "bundler"],
  ]) {
    await run(
      tsc,
      [
        "--noEmit",
        "--strict",
        "--skipLibCheck",
        "--target",
        "es2022",
        "--types",
        "node",
        "--typeRoots",
        join(pkgDir, "node_modules/@types"),
        ...resolution,
        "consumer.ts",
      ],
      { cwd: scratch },
    );
  }
});
