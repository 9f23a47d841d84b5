// The protocol entry's own rules beyond the vectors: kdf bounds, strict JSON, replays, sender copies, round trips.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as p from "../../dist/protocol/index.js";
import { code } from "../support/codes.mjs";

await p.ready();
const salt = p.toBase64(new Uint8Array(16));
const kdf = (over) => ({ alg: "argon2id13", salt, opslimit: 2, memlimit: 67108864, ...over });

test("kdf bounds: the edges pass, one step past each is refused", () => {
  for (const ok of [kdf(), kdf({ opslimit: 10, memlimit: 1073741824 })])
    assert.equal(
      code(() => p.checkKdf(ok)),
      "ok",
    );
  const refused = [
    kdf({ opslimit: 1 }),
    kdf({ opslimit: 11 }),
    kdf({ memlimit: 67108863 }),
    kdf({ memlimit: 1073741825 }),
    kdf({ alg: "argon2i13" }),
    kdf({ salt: p.toBase64(new Uint8Array(15)) }),
    kdf({ salt: "AA==" }),
    kdf({ opslimit: 2.5 }),
    kdf({ memlimit: "67108864" }),
    null,
  ];
  for (const k of refused)
    assert.equal(
      code(() => p.checkKdf(k)),
      "kdf_refused",
      JSON.stringify(k),
    );
});

test("deriveKeysSync refuses a weak kdf before deriving", () => {
  assert.equal(
    code(() => p.deriveKeysSync(p.passwordBytes("x"), kdf({ memlimit: 8192 }))),
    "kdf_refused",
  );
});

test("base64url: random round trips, and every single-character corruption of the last symbol is caught", () => {
  for (let n = 0; n < 40; n++) {
    const bytes = crypto.getRandomValues(new Uint8Array(n));
    assert.deepEqual(p.fromBase64(p.toBase64(bytes)), bytes);
  }
  assert.equal(
    code(() => p.fromBase64("AB")),
    "invalid_encoding",
  );
  assert.equal(
    code(() => p.fromBase64("AA")),
    "ok",
  );
});

test("strict JSON: duplicate keys anywhere and trailing text are refused; non-integers are not integers", () => {
  assert.throws(() => p.parseStrictJson('{"a":1,"a":2}'), SyntaxError);
  assert.throws(() => p.parseStrictJson('{"a":{"b":1,"b":1}}'), SyntaxError);
  assert.throws(() => p.parseStrictJson('{"a":1} x'), SyntaxError);
  assert.throws(() => p.parseStrictJson("{'a':1}"), SyntaxError);
  assert.equal(p.parseStrictJson('{"v":1}').v, 1);
  assert.ok(p.parseStrictJson('{"v":1.0}').v instanceof p.JsonNumber);
  assert.deepEqual(p.parseStrictJson(' [1, "x\\u0041", null, true] '), [1, "xA", null, true]);
});

const alice = { id: "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5e", ...p.generateKeyPair() };
const bob = { id: "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5f", ...p.generateKeyPair() };
const openAs = (me, ct, sender, from, to, now) =>
  p.open(ct, {
    me: me.id,
    publicKey: me.publicKey,
    secretKey: me.secretKey,
    senderPublicKey: sender.publicKey,
    from,
    to,
    now,
  });

test("seal and open; the sender copy opens for the sender only with from = me, to = the peer", () => {
  const payload = p.textPayload(alice.id, bob.id, "Hello, Bob!");
  const ct = p.seal(payload, bob.publicKey, alice.secretKey);
  assert.equal((ct.length - 88) % 256, 0);
  assert.equal(openAs(bob, ct, alice, alice.id, bob.id).body, "Hello, Bob!");
  const copy = p.sealSenderCopy(payload, alice.publicKey, alice.secretKey);
  assert.equal(openAs(alice, copy, alice, alice.id, bob.id).body, "Hello, Bob!");
  assert.equal(
    code(() => openAs(bob, copy, alice, alice.id, bob.id)),
    "not_for_me",
  );
  assert.equal(
    code(() => openAs(alice, copy, alice, alice.id, alice.id)),
    "not_for_me",
  );
  // The server naming another sender: the inner box does not open with that key.
  const carol = { id: "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d60", ...p.generateKeyPair() };
  assert.equal(
    code(() => openAs(bob, ct, carol, carol.id, bob.id)),
    "forged",
  );
  assert.equal(
    code(() => openAs(bob, ct, alice, carol.id, bob.id)),
    "forged",
  );
});

test("every flipped byte of a ciphertext fails to open", () => {
  const ct = p.seal(p.textPayload(alice.id, bob.id, "x"), bob.publicKey, alice.secretKey);
  for (let i = 0; i < ct.length; i += 7) {
    const bad = ct.slice();
    bad[i] ^= 1;
    assert.notEqual(
      code(() => openAs(bob, bad, alice, alice.id, bob.id)),
      "ok",
      `byte ${i}`,
    );
  }
});

test("a ts up to 5 minutes ahead opens, beyond is malformed; an unknown type is unsupported_type", () => {
  const now = Date.now();
  const at = (ts) =>
    p.seal({ ...p.textPayload(alice.id, bob.id, "t"), ts }, bob.publicKey, alice.secretKey);
  assert.equal(
    code(() => openAs(bob, at(now + 300000), alice, alice.id, bob.id, now)),
    "ok",
  );
  assert.equal(
    code(() => openAs(bob, at(now + 300001), alice, alice.id, bob.id, now)),
    "malformed",
  );
  const other = p.seal(
    { ...p.textPayload(alice.id, bob.id, "t"), type: "image" },
    bob.publicKey,
    alice.secretKey,
  );
  assert.equal(
    code(() => openAs(bob, other, alice, alice.id, bob.id)),
    "unsupported_type",
  );
});

test("too long a payload is refused before sealing", () => {
  const body = "x".repeat(p.MAX_PAYLOAD_BYTES);
  assert.equal(
    code(() => p.seal(p.textPayload(alice.id, bob.id, body), bob.publicKey, alice.secretKey)),
    "too_long",
  );
});

test("replay: the same payload in another entry is replayed, the same entry again is not", () => {
  const cache = new Map();
  p.checkReplay(cache, "p1", "e1");
  p.checkReplay(cache, "p1", "e1");
  assert.equal(
    code(() => p.checkReplay(cache, "p1", "e2")),
    "replayed",
  );
  p.checkReplay(cache, "p2", "e2");
});

test("recovery keys: random keys round-trip through their text, and one changed symbol is a typo", () => {
  for (let i = 0; i < 20; i++) {
    const key = p.randomKey();
    const text = p.recoveryKeyText(key);
    assert.match(text, /^([0-9A-HJKMNP-TV-Z]{4}-){13}[0-9A-HJKMNP-TV-Z]{4}$/);
    assert.deepEqual(p.parseRecoveryKey(text.toLowerCase().replaceAll("-", " ")), key);
    const j = i * 2;
    const swapped = text.slice(0, j) + (text[j] === "7" ? "8" : "7") + text.slice(j + 1);
    assert.equal(
      code(() => p.parseRecoveryKey(swapped)),
      "recovery_key_typo",
    );
  }
});
