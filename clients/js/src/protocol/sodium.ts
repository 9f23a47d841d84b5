/** libsodium-wrappers-sumo through its ESM entry, initialised once on first `ready()` (no top-level await). */
import sodiumModule from "libsodium-wrappers-sumo";

/** The libsodium API. */
export type Sodium = typeof sodiumModule;

let loading: Promise<void> | undefined;
let loaded = false;

/** Loads libsodium; every other function of the protocol entry needs this to have resolved once. */
export function ready(): Promise<void> {
  loading ??= sodiumModule.ready.then(() => {
    loaded = true;
  });
  return loading;
}

/** libsodium, which `ready()` must have loaded. */
export function lib(): Sodium {
  if (!loaded)
    throw new Error("libsodium is not loaded: await ready() from @sealpost/sdk/protocol first");
  return sodiumModule;
}

/** Overwrites each buffer with zeros (sodium_memzero), skipping what is not a Uint8Array. */
export function wipe(...buffers: (Uint8Array | undefined | null)[]): void {
  // A buffer transferred to a worker is detached (byteLength 0): nothing is left here to wipe.
  for (const b of buffers) if (b instanceof Uint8Array && b.byteLength > 0) b.fill(0);
}
