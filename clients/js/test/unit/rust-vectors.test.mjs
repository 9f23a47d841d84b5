// The Rust crate's vectors (sealpost-crypto's make_vectors example), reproduced by the JS protocol entry:
// envelopes (ok and every failure), the deterministic inner box, KDF and refused KDFs, wraps, recovery keys,
// padding, fingerprints, base64url and the small-order keys. SEALPOST_RUST_VECTORS names a file made
// beforehand (scripts/ci does); without it, cargo makes them now.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import sodium from "libsodium-wrappers-sumo";
import * as p from "../../dist/protocol/index.js";
import { code } from "../support/codes.mjs";
import { checkRecoveryVector } from "../support/recovery.mjs";
import { repoRoot } from "../support/paths.mjs";

await p.ready();
await sodium.ready;
const text = process.env.SEALPOST_RUST_VECTORS
  ? readFileSync(process.env.SEALPOST_RUST_VECTORS, "utf8")
  : execFileSync(
      "cargo",
      ["run", "-q", "--release", "-p", "sealpost-crypto", "--example", "make_vectors"],
      { cwd: repoRoot, encoding: "utf8", maxBuffer: 64 << 20 },
    );
const v = JSON.parse(text);
const b = (t) => p.fromBase64(t);
const parties = Object.fromEntries(
  Object.entries(v.parties).map(([n, x]) => [
    n,
    { id: x.user_id, pk: b(x.public_key), sk: b(x.secret_key) },
  ]),
);
const CODES = {
  ok: "ok",
  NotForMe: "not_for_me",
  Forged: "forged",
  Malformed: "malformed",
  UnsupportedType: "unsupported_type",
  Replayed: "replayed",
};

test("parties: each public key is its secret key's", () => {
  for (const x of Object.values(parties)) assert.deepEqual(p.publicKeyOf(x.sk), x.pk);
});

for (const e of v.envelopes) {
  test(`envelope ${e.name}: ${e.expect}`, () => {
    const me = parties[e.opened_by];
    const args = {
      me: me.id,
      publicKey: me.pk,
      secretKey: me.sk,
      senderPublicKey: parties[e.sender].pk,
      from: e.from,
      to: e.to,
    };
    assert.ok(e.expect in CODES, `unknown expectation ${e.expect}`);
    assert.equal(
      code(() => p.open(b(e.ciphertext), args)),
      CODES[e.expect],
    );
    if (e.expect === "ok") {
      const got = p.open(b(e.ciphertext), args);
      const want = JSON.parse(e.payload_utf8);
      assert.deepEqual(
        [got.id, got.from, got.to, got.ts, got.type, got.body],
        [want.id, want.from, want.to, want.ts, want.type, want.body],
      );
    }
  });
}

test("the deterministic inner box and its padding", () => {
  const d = v.deterministic_inner;
  assert.equal(p.toHex(p.pad256(p.utf8(d.payload_utf8))), d.padded_hex);
  // Seal with the vector's inner nonce; opening the outer layer gives the vector's inner box.
  const bob = parties.bob;
  const ct = p.sealBytes(p.utf8(d.payload_utf8), bob.pk, parties.alice.sk, b(d.nonce));
  assert.equal(p.toBase64(sodium.crypto_box_seal_open(ct, bob.pk, bob.sk)), d.inner);
  const opened = p.open(ct, {
    me: bob.id,
    publicKey: bob.pk,
    secretKey: bob.sk,
    senderPublicKey: parties.alice.pk,
    from: parties.alice.id,
    to: bob.id,
    now: Number.MAX_SAFE_INTEGER - 1e6,
  });
  assert.equal(opened.body, JSON.parse(d.payload_utf8).body);
});

test("kdf: the same keys; every refused kdf refused", () => {
  for (const k of v.kdf) {
    const keys = p.deriveKeysSync(p.passwordBytes(k.password), {
      alg: "argon2id13",
      salt: k.salt,
      opslimit: k.opslimit,
      memlimit: k.memlimit,
    });
    assert.equal(p.toBase64(keys.wrapKey), k.wrap_key);
    assert.equal(p.toBase64(keys.authKey), k.auth_key);
  }
  assert.ok(v.refused_kdf.length > 0);
  for (const k of v.refused_kdf)
    assert.equal(
      code(() => p.checkKdf(k)),
      "kdf_refused",
      JSON.stringify(k),
    );
});

test("wrap: the account key and secret key unwrap, fixed nonces reproduce the wraps, a wrong password is wrong_password", () => {
  const w = v.wrap;
  const kdf = { alg: "argon2id13", salt: w.salt, opslimit: w.opslimit, memlimit: w.memlimit };
  const { wrapKey, authKey } = p.deriveKeysSync(p.passwordBytes(w.password), kdf);
  assert.equal(p.toBase64(authKey), w.auth_key);
  const accountKey = p.unwrap(b(w.wrapped_account_key), wrapKey);
  assert.equal(p.toBase64(accountKey), w.account_key);
  assert.equal(
    p.toBase64(p.wrap(accountKey, wrapKey, b(w.nonce))),
    w.wrapped_account_key_with_nonce,
  );
  const sk = p.unwrap(b(w.wrapped_secret_key), accountKey);
  assert.equal(p.toBase64(sk), w.secret_key);
  assert.equal(p.toBase64(p.publicKeyOf(sk)), w.public_key);
  assert.equal(p.toBase64(p.wrap(sk, accountKey, b(w.nonce))), w.wrapped_secret_key_with_nonce);
  const wrong = p.deriveKeysSync(p.passwordBytes(w.password + "!"), kdf);
  assert.equal(
    code(() => p.unwrap(b(w.wrapped_account_key), wrong.wrapKey)),
    "wrong_password",
  );
});

test("recovery keys: text, lenient reading, typos, derived keys, the recovery wrap", () => {
  for (const r of v.recovery) {
    const keys = checkRecoveryVector(r, r.text_lowercase_with_o_and_l, r.typos);
    assert.equal(p.toBase64(p.unwrap(b(r.recovery_wrapped), keys.wrapKey)), r.account_key);
  }
});

test("padding", () => {
  for (const x of v.padding)
    assert.equal(p.toHex(p.pad256(p.fromHex(x.unpadded_hex))), x.padded_hex);
});

test("fingerprints and safety numbers", () => {
  for (const f of v.fingerprints) {
    assert.equal(p.fingerprint(f.a_id, b(f.a_public_key)), f.a_digits);
    assert.equal(p.fingerprint(f.b_id, b(f.b_public_key)), f.b_digits);
    assert.equal(
      p.safetyNumber(f.a_id, b(f.a_public_key), f.b_id, b(f.b_public_key)),
      f.safety_number,
    );
  }
});

test("base64url", () => {
  for (const x of v.base64url) {
    assert.equal(p.toBase64(p.fromHex(x.hex)), x.text);
    assert.equal(p.toHex(p.fromBase64(x.text)), x.hex);
  }
});

test("public keys: the refused ones refused, the accepted ones accepted", () => {
  for (const k of v.refused_public_keys_hex)
    assert.equal(
      code(() => p.checkPublicKey(p.fromHex(k))),
      "small_order_key",
      k,
    );
  for (const k of v.accepted_public_keys)
    assert.equal(
      code(() => p.checkPublicKey(b(k))),
      "ok",
      k,
    );
});
