// Where the tests find the shared vectors, the server binary and the repository root.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const repoRoot = resolve(pkgDir, "../..");

/** shared/vectors/protocol-v1.json: beside the repository (CI), or the crate's copy. */
export function sharedVectorsPath() {
  const candidates = [
    process.env.SEALPOST_SHARED_VECTORS,
    join(repoRoot, "../shared/vectors/protocol-v1.json"),
    "/work/shared/vectors/protocol-v1.json",
    join(repoRoot, "crates/sealpost-crypto/tests/vectors/protocol-v1.json"),
  ];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error("protocol-v1.json not found: set SEALPOST_SHARED_VECTORS");
  return found;
}

/** The sealpost binary: SEALPOST_BIN, else target/release/sealpost of the repository. */
export function serverBin() {
  return resolve(pkgDir, process.env.SEALPOST_BIN ?? "../../target/release/sealpost");
}
