// One conformance suite for every KeyStore: memory, the Node file store, and IndexedDB (through fake-indexeddb).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, stat, writeFile, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IDBFactory } from "fake-indexeddb";
import { memoryStore, indexedDBStore } from "../../dist/index.js";
import { fileStore } from "../../dist/node/index.js";
import { ready } from "../../dist/protocol/index.js";
import { codeOf } from "../support/codes.mjs";

await ready();
const SERVER = "https://mail.example.com";
const OTHER = "http://127.0.0.1:8080";
const A = "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5e";
const B = "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5f";
const bytes = (text) => new TextEncoder().encode(text);

const dirs = [];
const kinds = {
  memory: async () => ({ store: memoryStore() }),
  file: async () => {
    const dir = await mkdtemp(join(tmpdir(), "sealpost-store-"));
    dirs.push(dir);
    const key = crypto.getRandomValues(new Uint8Array(32));
    return { store: fileStore({ dir: join(dir, "keys"), key }), dir: join(dir, "keys"), key };
  },
  indexeddb: async () => {
    const indexedDB = new IDBFactory();
    return { store: indexedDBStore({ indexedDB }), indexedDB };
  },
};

for (const [kind, make] of Object.entries(kinds)) {
  describe(`KeyStore conformance: ${kind}`, () => {
    test("an unknown record is undefined and nothing is listed", async () => {
      const { store } = await make();
      assert.equal(await store.load(SERVER, A), undefined);
      assert.deepEqual(await store.list(SERVER), []);
    });

    test("a saved record reads back byte for byte, per server and user", async () => {
      const { store } = await make();
      const big = crypto.getRandomValues(new Uint8Array(50000));
      await store.save(SERVER, A, bytes("alice on one server"));
      await store.save(SERVER, B, big);
      await store.save(OTHER, A, bytes("alice on another"));
      assert.deepEqual(await store.load(SERVER, A), bytes("alice on one server"));
      assert.deepEqual(await store.load(SERVER, B), big);
      assert.deepEqual(await store.load(OTHER, A), bytes("alice on another"));
      assert.deepEqual((await store.list(SERVER)).sort(), [A, B]);
      assert.deepEqual(await store.list(OTHER), [A]);
    });

    test("saving replaces the whole record", async () => {
      const { store } = await make();
      await store.save(SERVER, A, bytes("a much longer first version of the record"));
      await store.save(SERVER, A, bytes("short"));
      assert.deepEqual(await store.load(SERVER, A), bytes("short"));
    });

    test("the store keeps its own copy: changing the caller's buffer afterwards changes nothing", async () => {
      const { store } = await make();
      const record = bytes("secret");
      await store.save(SERVER, A, record);
      record.fill(0);
      assert.deepEqual(await store.load(SERVER, A), bytes("secret"));
    });

    test("delete forgets one record and leaves the others", async () => {
      const { store } = await make();
      await store.save(SERVER, A, bytes("a"));
      await store.save(SERVER, B, bytes("b"));
      await store.delete(SERVER, A);
      assert.equal(await store.load(SERVER, A), undefined);
      assert.deepEqual(await store.list(SERVER), [B]);
      await store.delete(SERVER, A);
    });

    test("concurrent saves leave one whole record", async () => {
      const { store } = await make();
      const versions = Array.from({ length: 8 }, (_, i) => bytes(`version ${i} `.repeat(100 + i)));
      await Promise.all(versions.map((v) => store.save(SERVER, A, v)));
      const got = await store.load(SERVER, A);
      assert.ok(versions.some((v) => v.length === got.length && v.every((x, i) => x === got[i])));
    });
  });
}

describe("file store specifics", () => {
  test("files are 0600 in a 0700 directory, sealed (no plaintext), and no temporary file is left", async () => {
    const { store, dir } = await kinds.file();
    await store.save(SERVER, A, bytes("plaintext-canary-1234"));
    const names = await readdir(dir);
    assert.equal(names.length, 1);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, names[0]))).mode & 0o777, 0o600);
    const raw = await readFile(join(dir, names[0]));
    assert.equal(raw.includes(Buffer.from("plaintext-canary-1234")), false);
  });

  test("another key, a tampered file or a record moved to another account's name does not open", async () => {
    const { store, dir, key } = await kinds.file();
    await store.save(SERVER, A, bytes("alice"));
    await store.save(SERVER, B, bytes("bob"));
    const other = fileStore({ dir, key: crypto.getRandomValues(new Uint8Array(32)) });
    assert.equal(await codeOf(other.load(SERVER, A)), "store_failed");
    const names = await readdir(dir);
    const fa = names.find((n) => n.includes(A));
    const fb = names.find((n) => n.includes(B));
    const a = await readFile(join(dir, fa));
    await writeFile(join(dir, fb), a);
    assert.equal(await codeOf(store.load(SERVER, B)), "store_failed");
    const tampered = Buffer.from(a);
    tampered[tampered.length - 1] ^= 1;
    await writeFile(join(dir, fa), tampered);
    assert.equal(await codeOf(store.load(SERVER, A)), "store_failed");
  });

  test("a key that is not 32 bytes is refused", async () => {
    assert.throws(() => fileStore({ dir: tmpdir(), key: new Uint8Array(16) }), {
      code: "invalid_input",
    });
  });
});

describe("IndexedDB specifics", () => {
  test("one database per (server, user), the record sealed with AES-GCM under a non-extractable key", async () => {
    const { store, indexedDB } = await kinds.indexeddb();
    await store.save(SERVER, A, bytes("plaintext-canary-5678"));
    await store.save(OTHER, A, bytes("x"));
    const names = (await indexedDB.databases()).map((d) => d.name).sort();
    assert.deepEqual(names, [`sealpost:${OTHER}#${A}`, `sealpost:${SERVER}#${A}`]);
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open(`sealpost:${SERVER}#${A}`);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const get = (k) =>
      new Promise((resolve) => {
        const r = db.transaction("kv").objectStore("kv").get(k);
        r.onsuccess = () => resolve(r.result);
      });
    const key = await get("key");
    const sealed = await get("sealed");
    db.close();
    assert.equal(key.extractable, false);
    assert.equal(key.algorithm.name, "AES-GCM");
    await assert.rejects(crypto.subtle.exportKey("raw", key));
    assert.equal(Buffer.from(sealed.data).includes(Buffer.from("plaintext-canary-5678")), false);
    await store.delete(SERVER, A);
    assert.deepEqual(
      (await indexedDB.databases()).map((d) => d.name),
      [`sealpost:${OTHER}#${A}`],
    );
  });
});

test.after?.(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
