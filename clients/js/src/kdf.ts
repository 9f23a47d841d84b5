/**
 * Argon2id (PROTOCOL §2.1) off the page's thread: in a browser each derivation runs in a module
 * Worker made for it and terminated after (the only way to give WASM memory back), with the
 * password and salt transferred, not copied. Node derives inline (a derivation blocks its event
 * loop for its duration; see the README).
 */
import { SealpostError } from "./errors.js";
import { checkKdf, deriveKeysSync, type Kdf, type PasswordKeys } from "./protocol/keys.js";
import { fromBase64 } from "./protocol/encoding.js";
import { ready, wipe } from "./protocol/sodium.js";

/** Derives the two keys from a password (NFC UTF-8 bytes, which it may wipe) and a kdf already checked. */
export type KdfRunner = (password: Uint8Array, kdf: Kdf) => Promise<PasswordKeys>;

/** Derives on this thread. */
export const inlineKdf: KdfRunner = async (password, kdf) => {
  await ready();
  try {
    return deriveKeysSync(password, kdf);
  } finally {
    wipe(password);
  }
};

/** Derives in a module Worker per derivation (browsers). */
export const workerKdf: KdfRunner = async (password, kdf) => {
  const checked = checkKdf(kdf);
  const salt = fromBase64(checked.salt);
  const worker = new Worker(new URL("./kdf-worker.js", import.meta.url), {
    type: "module",
    name: "sealpost-kdf",
  });
  return new Promise<PasswordKeys>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent) => {
      worker.terminate();
      const d = event.data as { wrapKey?: ArrayBuffer; authKey?: ArrayBuffer; error?: string };
      if (d.wrapKey && d.authKey)
        resolve({ wrapKey: new Uint8Array(d.wrapKey), authKey: new Uint8Array(d.authKey) });
      else if (d.error === "kdf_refused")
        reject(new SealpostError("kdf_refused", "refusing the server's password parameters"));
      else
        reject(
          new SealpostError(
            "kdf_out_of_memory",
            "not enough memory to derive keys from the password",
          ),
        );
    };
    worker.onerror = (event) => {
      worker.terminate();
      event.preventDefault?.();
      reject(
        new SealpostError(
          "kdf_out_of_memory",
          "the key derivation worker failed (out of memory, or blocked by the page's CSP: worker-src 'self')",
        ),
      );
    };
    const p =
      password.buffer.byteLength === password.length ? password.buffer : password.slice().buffer;
    worker.postMessage(
      { password: p, salt: salt.buffer, opslimit: checked.opslimit, memlimit: checked.memlimit },
      [p as ArrayBuffer, salt.buffer as ArrayBuffer],
    );
    wipe(password);
  });
};

/** The runner for this environment: a Worker where the platform has module Workers (browsers), inline elsewhere (Node). */
export function defaultKdf(): KdfRunner {
  return typeof Worker === "function" && typeof window !== "undefined" ? workerKdf : inlineKdf;
}
