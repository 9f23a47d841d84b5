/** The module Worker that runs one Argon2id derivation (see kdf.ts) and answers the two keys as transferred buffers. */
import { deriveKeysSync } from "./protocol/keys.js";
import { toBase64 } from "./protocol/encoding.js";
import { ready, wipe } from "./protocol/sodium.js";

interface Job {
  password: ArrayBuffer;
  salt: ArrayBuffer;
  opslimit: number;
  memlimit: number;
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<Job>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
};

scope.onmessage = (event) => {
  const job = event.data;
  const password = new Uint8Array(job.password);
  ready()
    .then(() => {
      const kdf = {
        alg: "argon2id13" as const,
        salt: toBase64(new Uint8Array(job.salt)),
        opslimit: job.opslimit,
        memlimit: job.memlimit,
      };
      const keys = deriveKeysSync(password, kdf);
      scope.postMessage({ wrapKey: keys.wrapKey.buffer, authKey: keys.authKey.buffer }, [
        keys.wrapKey.buffer as ArrayBuffer,
        keys.authKey.buffer as ArrayBuffer,
      ]);
    })
    .catch((e: unknown) => {
      scope.postMessage({ error: (e as { code?: string }).code ?? "kdf_out_of_memory" });
    })
    .finally(() => wipe(password));
};
