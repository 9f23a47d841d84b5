#!/usr/bin/env node
// Benchmark (not a test): sealing and opening in Node with this SDK (libsodium-wrappers-sumo, WASM),
// and the same operations in the Rust crate in the same run (sealpost-crypto's criterion bench,
// group "envelope": the same two payload sizes, 200 and 65,279 bytes of JSON), as a ratio.
//
// Run from clients/js after `npm run build`: node bench/seal-open.mjs [--js-only]
// CARGO_TARGET_DIR is honoured for where criterion leaves its estimates.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as p from "../dist/protocol/index.js";
import { repoRoot } from "../test/support/paths.mjs";

await p.ready();
const alice = p.generateKeyPair();
const bob = p.generateKeyPair();
const aliceId = "00000000-0000-0000-0000-000000000001";
const bobId = "00000000-0000-0000-0000-000000000002";
const NOW = 1795780800123;

function payloadOf(size) {
  const base = p.payloadBytes(p.textPayload(aliceId, bobId, "", NOW)).length;
  const payload = p.textPayload(aliceId, bobId, "x".repeat(size - base), NOW);
  if (p.payloadBytes(payload).length !== size) throw new Error("payload size");
  return payload;
}

/** Mean ns per call of fn over about `ms` milliseconds, after a warm-up. */
function measure(fn, ms = 1000) {
  const warmEnd = performance.now() + 200;
  while (performance.now() < warmEnd) fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 16; i++) fn();
    n += 16;
    now = performance.now();
  }
  return ((now - start) * 1e6) / n;
}

/** One round of the four JS measurements; rounds run before and after Rust's, and the fastest counts (the machine is shared). */
function jsRound(into) {
  for (const size of [200, 65279]) {
    const payload = payloadOf(size);
    const ct = p.seal(payload, bob.publicKey, alice.secretKey);
    const params = {
      me: bobId,
      publicKey: bob.publicKey,
      secretKey: bob.secretKey,
      senderPublicKey: alice.publicKey,
      from: aliceId,
      to: bobId,
      now: NOW,
    };
    const seal = measure(() => p.seal(payload, bob.publicKey, alice.secretKey));
    const open = measure(() => p.open(ct, params));
    into[`seal/${size}B`] = Math.min(into[`seal/${size}B`] ?? Infinity, seal);
    into[`open/${size}B`] = Math.min(into[`open/${size}B`] ?? Infinity, open);
  }
}

const js = {};
jsRound(js);
jsRound(js);

let rust = {};
if (!process.argv.includes("--js-only")) {
  execFileSync(
    "cargo",
    [
      "bench",
      "-q",
      "-p",
      "sealpost-crypto",
      "--bench",
      "crypto",
      "--",
      "envelope",
      "--warm-up-time",
      "1",
      "--measurement-time",
      "3",
    ],
    {
      cwd: repoRoot,
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const target = process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target");
  for (const key of Object.keys(js)) {
    const [op, size] = key.split("/");
    const est = JSON.parse(
      readFileSync(join(target, "criterion/envelope", op, size, "new/estimates.json"), "utf8"),
    );
    rust[key] = est.median.point_estimate;
  }
  jsRound(js);
  jsRound(js);
}

// Argon2id inline in Node (what login and register cost here; the README's reason for not using a worker thread).
const kdfMs = {};
for (const [name, limits] of [
  ["interactive", { opslimit: 2, memlimit: 67108864 }],
  ["moderate", { opslimit: 3, memlimit: 268435456 }],
]) {
  const kdf = p.newKdf(limits);
  const start = performance.now();
  p.deriveKeysSync(p.passwordBytes("benchmark password"), kdf);
  kdfMs[name] = performance.now() - start;
}

const us = (ns) => (ns / 1000).toFixed(1).padStart(9);
console.log(
  `node ${process.version}, libsodium-wrappers-sumo 0.8.4 (WASM) vs sealpost-crypto (Rust, criterion)`,
);
console.log(
  "operation         JS µs/op   Rust µs/op   JS/Rust   (JS: fastest of 4 rounds; Rust: criterion median)",
);
for (const key of Object.keys(js)) {
  const ratio = rust[key] ? (js[key] / rust[key]).toFixed(2) + "x" : "-";
  console.log(
    `${key.padEnd(16)} ${us(js[key])}   ${rust[key] ? us(rust[key]) : "        -"}   ${ratio.padStart(7)}`,
  );
}
console.log(
  `Argon2id inline in Node: INTERACTIVE ${kdfMs.interactive.toFixed(0)} ms, MODERATE ${kdfMs.moderate.toFixed(0)} ms (one derivation each)`,
);
