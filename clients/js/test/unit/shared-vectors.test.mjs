// shared/vectors/protocol-v1.json (made by PyNaCl): every positive and negative case, through the protocol entry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import sodium from "libsodium-wrappers-sumo";
import * as p from "../../dist/protocol/index.js";
import { code } from "../support/codes.mjs";
import { checkRecoveryVector } from "../support/recovery.mjs";
import { sharedVectorsPath } from "../support/paths.mjs";

await p.ready();
await sodium.ready;
const v = JSON.parse(readFileSync(sharedVectorsPath(), "utf8"));
const b = (t) => p.fromBase64(t);

test("base64url: valid texts decode and encode back", () => {
  for (const [text, hex] of Object.entries(v.base64url.valid)) {
    assert.equal(p.toHex(p.fromBase64(text)), hex);
    assert.equal(p.toBase64(p.fromHex(hex)), text);
  }
});

test("base64url: every invalid text is refused as invalid_encoding", () => {
  assert.ok(v.base64url.invalid.length >= 8);
  for (const text of v.base64url.invalid)
    assert.equal(
      code(() => p.fromBase64(text)),
      "invalid_encoding",
      text,
    );
});

for (const [i, k] of v.kdf.entries()) {
  test(`kdf ${i}: Argon2id gives wrap_key and auth_key${k.slow ? " (MODERATE)" : ""}`, () => {
    const kdf = { alg: "argon2id13", salt: k.salt, opslimit: k.opslimit, memlimit: k.memlimit };
    const keys = p.deriveKeysSync(p.passwordBytes(k.password), kdf);
    if (k.password_utf8_hex !== undefined)
      assert.equal(p.toHex(p.utf8(k.password)), k.password_utf8_hex);
    assert.equal(p.toBase64(keys.wrapKey), k.wrap_key);
    assert.equal(p.toBase64(keys.authKey), k.auth_key);
    if (k.auth_hash_sha256 !== undefined)
      assert.equal(p.toBase64(p.sha256(keys.authKey)), k.auth_hash_sha256);
  });
}

test("wrap: fixed nonces reproduce both wraps; the wrong password is wrong_password", () => {
  for (const w of v.wrap) {
    const kdf = { alg: "argon2id13", salt: w.salt, opslimit: w.opslimit, memlimit: w.memlimit };
    const { wrapKey } = p.deriveKeysSync(p.passwordBytes(w.password), kdf);
    assert.equal(
      p.toBase64(p.wrap(b(w.account_key), wrapKey, b(w.nonce_account))),
      w.wrapped_account_key,
    );
    assert.equal(
      p.toBase64(p.wrap(b(w.secret_key), b(w.account_key), b(w.nonce_secret))),
      w.wrapped_secret_key,
    );
    assert.equal(p.toBase64(p.unwrap(b(w.wrapped_account_key), wrapKey)), w.account_key);
    assert.equal(p.toBase64(p.publicKeyOf(b(w.secret_key))), w.public_key);
    const wrong = p.deriveKeysSync(p.passwordBytes(w.wrong_password), kdf);
    assert.equal(
      code(() => p.unwrap(b(w.wrapped_account_key), wrong.wrapKey)),
      "wrong_password",
    );
  }
});

test("recovery key: text, lenient reading, typos, wrap and auth keys", () => {
  const r = v.recovery;
  const key = b(r.recovery_key);
  const keys = checkRecoveryVector(r, r.text_lowercase_with_o_for_zero, r.texts_with_typos);
  assert.equal(p.toBase64(p.sha256(keys.authKey)), r.recovery_auth_hash_sha256);
  assert.equal(p.toBase64(p.wrap(b(r.account_key), keys.wrapKey, b(r.nonce))), r.recovery_wrapped);
});

test("padding: sodium_pad to 256-byte blocks", () => {
  for (const pad of v.padding) {
    const payload = new Uint8Array(pad.unpadded_len).fill(0x41);
    assert.equal(p.toHex(p.pad256(payload)), pad.padded_hex);
  }
});

const env = v.envelopes;
const party = (x) => ({ id: x.user_id, pk: b(x.public_key), sk: b(x.secret_key) });
const alice = party(env.alice);
const bob = party(env.bob);
const mallory = party(env.mallory);
const now = 1795780800123 + 60000;

test("deterministic inner box: the same bytes as PyNaCl, and it opens", () => {
  const d = env.deterministic_inner;
  // Rebuild the inner box with the vector's nonce by sealing to Bob and opening the outer layer.
  const ct = p.sealBytes(p.utf8(d.payload_utf8), bob.pk, alice.sk, b(d.inner_nonce));
  assert.equal(p.toHex(p.pad256(p.utf8(d.payload_utf8))), d.padded_hex);
  assert.equal(p.toBase64(sodium.crypto_box_seal_open(ct, bob.pk, bob.sk)), d.inner);
  const sodiumOpen = p.open(ct, {
    me: bob.id,
    publicKey: bob.pk,
    secretKey: bob.sk,
    senderPublicKey: alice.pk,
    from: alice.id,
    to: bob.id,
    now,
  });
  assert.equal(sodiumOpen.body, JSON.parse(d.payload_utf8).body);
});

for (const e of env.open_ok) {
  test(`open_ok/${e.name}`, () => {
    const me = e.opened_by === "alice" ? alice : bob;
    const got = p.open(b(e.ciphertext), {
      me: me.id,
      publicKey: me.pk,
      secretKey: me.sk,
      senderPublicKey: alice.pk,
      from: e.from,
      to: e.to,
      now,
    });
    const want = JSON.parse(e.payload_utf8);
    assert.deepEqual(
      { ...got },
      {
        v: want.v,
        id: want.id,
        from: want.from,
        to: want.to,
        ts: want.ts,
        type: want.type,
        body: want.body,
      },
    );
  });
}

const errorCode = {
  NotForMe: "not_for_me",
  Forged: "forged",
  Malformed: "malformed",
  Replayed: "replayed",
};
for (const e of env.must_fail) {
  test(`must_fail/${e.name} → ${e.error}`, () => {
    const got = code(() =>
      p.open(b(e.ciphertext), {
        me: bob.id,
        publicKey: bob.pk,
        secretKey: bob.sk,
        senderPublicKey: alice.pk,
        from: e.from,
        to: bob.id,
        now,
      }),
    );
    assert.notEqual(got, "ok");
    if (e.error !== "any") assert.equal(got, errorCode[e.error]);
  });
}

test("mallory's own key opens nothing sealed to Bob", () => {
  const ct = b(env.open_ok[0].ciphertext);
  assert.equal(
    code(() =>
      p.open(ct, {
        me: mallory.id,
        publicKey: mallory.pk,
        secretKey: mallory.sk,
        senderPublicKey: alice.pk,
        from: alice.id,
        to: bob.id,
        now,
      }),
    ),
    "not_for_me",
  );
});

test("fingerprints and the safety number", () => {
  const f = v.fingerprints;
  assert.equal(p.fingerprint(f.alice.user_id, b(f.alice.public_key)), f.alice.digits);
  assert.equal(p.fingerprint(f.bob.user_id, b(f.bob.public_key)), f.bob.digits);
  assert.equal(
    p.safetyNumber(f.alice.user_id, b(f.alice.public_key), f.bob.user_id, b(f.bob.public_key)),
    f.safety_number_alice_bob,
  );
  assert.equal(
    p.safetyNumber(f.bob.user_id, b(f.bob.public_key), f.alice.user_id, b(f.alice.public_key)),
    f.safety_number_alice_bob,
  );
});

test("small-order public keys are refused, before sealing too", () => {
  assert.equal(v.small_order_public_keys.length, 7);
  for (const hex of v.small_order_public_keys) {
    const key = p.fromHex(hex);
    assert.equal(
      code(() => p.checkPublicKey(key)),
      "small_order_key",
      hex,
    );
    assert.equal(
      code(() => p.sealBytes(p.utf8("{}"), key, alice.sk)),
      "small_order_key",
    );
  }
  assert.equal(
    code(() => p.checkPublicKey(alice.pk)),
    "ok",
  );
});
