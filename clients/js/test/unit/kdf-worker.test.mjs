// The browser's KDF path, run in Node through a small Web Worker stand-in on worker_threads: the real
// kdf-worker module derives the keys, the password is transferred (detached here), the worker is
// terminated after each derivation, a worker failure is kdf_out_of_memory, a weak kdf starts no worker.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Worker as ThreadWorker } from "node:worker_threads";
import { workerKdf, inlineKdf } from "../../dist/index.js";
import * as p from "../../dist/protocol/index.js";
import { codeOf } from "../support/codes.mjs";
import { sharedVectorsPath } from "../support/paths.mjs";

await p.ready();
const vector = JSON.parse(readFileSync(sharedVectorsPath(), "utf8")).kdf[0];
const kdf = {
  alg: "argon2id13",
  salt: vector.salt,
  opslimit: vector.opslimit,
  memlimit: vector.memlimit,
};

const made = [];
/** A Web Worker (module type) made of a worker thread that gives the module onmessage and postMessage. */
class WebWorker {
  constructor(url, options) {
    assert.equal(options?.type, "module");
    const boot = `
      import { parentPort } from "node:worker_threads";
      const early = [];
      globalThis.postMessage = (m, t) => parentPort.postMessage(m, t);
      parentPort.on("message", (data) => (globalThis.onmessage ? globalThis.onmessage({ data }) : early.push(data)));
      await import(${JSON.stringify(String(url))});
      for (const data of early) globalThis.onmessage({ data });
    `;
    this.thread = new ThreadWorker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`));
    this.terminated = false;
    this.thread.on("message", (data) => this.onmessage?.({ data }));
    this.thread.on("error", (e) => this.onerror?.({ message: String(e), preventDefault() {} }));
    made.push(this);
  }
  postMessage(message, transfer) {
    this.thread.postMessage(message, transfer);
  }
  terminate() {
    this.terminated = true;
    void this.thread.terminate();
  }
}

afterEach(() => {
  delete globalThis.Worker;
  made.length = 0;
});

test("a derivation in the worker gives the vector's keys; the password is transferred and the worker terminated", async () => {
  globalThis.Worker = WebWorker;
  const password = p.passwordBytes(vector.password);
  const keys = await workerKdf(password, kdf);
  assert.equal(p.toBase64(keys.wrapKey), vector.wrap_key);
  assert.equal(p.toBase64(keys.authKey), vector.auth_key);
  assert.equal(password.byteLength, 0, "the password buffer was transferred, not copied");
  assert.equal(made.length, 1);
  assert.equal(made[0].terminated, true);
  // A second derivation gets a worker of its own.
  await workerKdf(p.passwordBytes(vector.password), kdf);
  assert.equal(made.length, 2);
  assert.ok(made.every((w) => w.terminated));
});

test("the inline runner gives the same keys and wipes the password", async () => {
  const password = p.passwordBytes(vector.password);
  const keys = await inlineKdf(password, kdf);
  assert.equal(p.toBase64(keys.authKey), vector.auth_key);
  assert.ok(password.every((b) => b === 0));
});

test("a weak kdf is refused before any worker starts", async () => {
  globalThis.Worker = WebWorker;
  assert.equal(
    await codeOf(workerKdf(p.passwordBytes("x"), { ...kdf, memlimit: 1024 })),
    "kdf_refused",
  );
  assert.equal(made.length, 0);
});

test("a worker that fails (out of memory, or blocked) is kdf_out_of_memory, and is terminated", async () => {
  class Failing extends WebWorker {
    constructor(_url, options) {
      super(
        "data:text/javascript,throw new RangeError('WebAssembly.Memory(): could not allocate memory')",
        options,
      );
    }
  }
  globalThis.Worker = Failing;
  assert.equal(await codeOf(workerKdf(p.passwordBytes("x"), kdf)), "kdf_out_of_memory");
  assert.equal(made[0].terminated, true);
});
