/**
 * The Node KeyStore: one file per (server origin, user id) in a 0700 directory, each 0600, written
 * atomically (a temporary file, fsync, rename) and sealed with crypto_secretbox under a 32-byte key
 * the application supplies (from its own secret storage; never stored beside the files).
 */
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { KeyStore } from "../store.js";
import { concat, toHex, utf8 } from "../protocol/encoding.js";
import { lib, ready } from "../protocol/sodium.js";
import { SealpostError } from "../errors.js";

/** Options of `fileStore`. */
export interface FileStoreOptions {
  /** The directory (made 0700 if missing). */
  dir: string;
  /** The 32-byte key the records are sealed under. */
  key: Uint8Array;
}

const SUFFIX = ".sealpost";

/** The file KeyStore (see the module comment). */
export function fileStore(options: FileStoreOptions): KeyStore {
  if (!(options.key instanceof Uint8Array) || options.key.length !== 32) {
    throw new SealpostError("invalid_input", "the file store's key is 32 bytes");
  }
  const key = options.key.slice();
  const dir = options.dir;
  const fileName = (server: string, userId: string) => `${toHex(utf8(server))}.${userId}${SUFFIX}`;
  const ad = (server: string, userId: string) => utf8(`sealpost-file-store\n${server}\n${userId}`);
  let counter = 0;

  return {
    async list(server) {
      const prefix = `${toHex(utf8(server))}.`;
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
      }
      return names
        .filter((n) => n.startsWith(prefix) && n.endsWith(SUFFIX))
        .map((n) => n.slice(prefix.length, -SUFFIX.length));
    },
    async load(server, userId) {
      await ready();
      let sealed: Uint8Array;
      try {
        sealed = new Uint8Array(await readFile(join(dir, fileName(server, userId))));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
      }
      const s = lib();
      try {
        const nonce = sealed.subarray(0, 24);
        // The file's name is bound in: a record renamed to another account's file does not open.
        const mac = s.crypto_generichash(32, ad(server, userId), key);
        const plain = s.crypto_secretbox_open_easy(sealed.subarray(24), nonce, key);
        const got = plain.subarray(0, 32);
        if (s.compare(got, mac) !== 0) throw new Error("bound to another account");
        return plain.slice(32);
      } catch {
        throw new SealpostError(
          "store_failed",
          "a keystore file does not open with this key (another key, or tampered with)",
        );
      }
    },
    async save(server, userId, record) {
      await ready();
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const s = lib();
      const nonce = s.randombytes_buf(24);
      const plain = concat(s.crypto_generichash(32, ad(server, userId), key), record);
      const sealed = concat(nonce, s.crypto_secretbox_easy(plain, nonce, key));
      plain.fill(0);
      const target = join(dir, fileName(server, userId));
      const temp = `${target}.${process.pid}.${counter++}.tmp`;
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.writeFile(sealed);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
      const dirHandle = await open(dir, "r");
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    },
    async delete(server, userId) {
      await rm(join(dir, fileName(server, userId)), { force: true });
    },
  };
}
