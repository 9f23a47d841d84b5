// Checks vectors made by sealpost-crypto (Rust) with libsodium-wrappers-sumo (real libsodium, as
// wasm), and opens the PyNaCl vectors of shared/vectors as an extra cross-check.
//
// Run: node check_rust_vectors.mjs rust-vectors.json [protocol-v1.json]
// Written from PROTOCOL.md, not from the Rust code. Prints each failure and "N passed, M failed";
// exits non-zero on any failure.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import sodiumModule from "libsodium-wrappers-sumo";

const sodium = sodiumModule;
await sodium.ready;

const here = dirname(fileURLToPath(import.meta.url));
const enc = new TextEncoder();
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const OPS_MIN = 2, OPS_MAX = 10, MEM_MIN = 67108864, MEM_MAX = 1073741824;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// §1: canonical base64url without padding.
function b64e(bytes) {
  return Buffer.from(bytes).toString("base64url");
}
function b64d(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new Error(`not base64url without padding: ${JSON.stringify(text)}`);
  }
  const out = new Uint8Array(Buffer.from(text, "base64url"));
  if (b64e(out) !== text) throw new Error(`non-zero unused bits: ${text}`);
  return out;
}
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

function derive(password, salt, ops, mem) {
  const master = sodium.crypto_pwhash(64, enc.encode(password.normalize("NFC")), salt, ops, mem,
    sodium.crypto_pwhash_ALG_ARGON2ID13);
  return [master.slice(0, 32), master.slice(32)];
}

function checkKdf(kdf) {
  const salt = b64d(kdf.salt);
  if (kdf.alg !== "argon2id13" || salt.length !== 16 || !(kdf.opslimit >= OPS_MIN && kdf.opslimit <= OPS_MAX &&
      kdf.memlimit >= MEM_MIN && kdf.memlimit <= MEM_MAX)) {
    throw new Error("refused kdf");
  }
}

function unwrap(blob, key) {
  if (blob.length !== 72) throw new Error("a wrapped key is 72 bytes");
  return sodium.crypto_secretbox_open_easy(blob.slice(24), blob.slice(0, 24), key);
}

const keyed = (label, key) => sodium.crypto_generichash(32, enc.encode(label), key);

function recoveryText(key) {
  let n = BigInt("0x" + hex(concat(key, keyed("sealpost/v1/recovery-check", key).slice(0, 3))));
  let sym = "";
  for (let i = 0; i < 56; i++) {
    sym = CROCKFORD[Number(n & 31n)] + sym;
    n >>= 5n;
  }
  return sym.match(/.{4}/g).join("-");
}

function recoveryParse(text) {
  const t = text.replace(/[ -]/g, "").toUpperCase().replace(/O/g, "0").replace(/[IL]/g, "1");
  if (t.length !== 56 || [...t].some((c) => !CROCKFORD.includes(c))) throw new Error("that recovery key has a typo");
  let n = 0n;
  for (const c of t) n = (n << 5n) | BigInt(CROCKFORD.indexOf(c));
  const raw = unhex(n.toString(16).padStart(70, "0"));
  if (!eq(keyed("sealpost/v1/recovery-check", raw.slice(0, 32)).slice(0, 3), raw.slice(32))) {
    throw new Error("that recovery key has a typo");
  }
  return raw.slice(0, 32);
}

function fingerprintDigits(userId, pk) {
  const fp = sodium.crypto_generichash(30, concat(enc.encode("sealpost/v1/fingerprint"), unhex(userId.replace(/-/g, "")), pk), null);
  let out = "";
  for (let i = 0; i < 30; i += 5) out += (BigInt("0x" + hex(fp.slice(i, i + 5))) % 100000n).toString().padStart(5, "0");
  return out;
}

// JSON.parse keeps the last of duplicate keys and forgets how a number was written, so §3.1's
// checks need this small strict parser: RFC 8259 grammar, objects as Maps refusing duplicate keys,
// numbers kept as their text ({ num: "1.0" }).
function parseStrict(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at ${i}`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const token = (re) => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) return null;
    i += m[0].length;
    return m[0];
  };
  const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const string = () => JSON.parse(token(STRING) ?? fail("string expected"));
  function value() {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const out = new Map();
      ws();
      if (text[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        ws();
        const key = string();
        if (out.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        ws();
        if (text[i++] !== ":") fail("':' expected");
        out.set(key, value());
        ws();
        const d = text[i++];
        if (d === "}") return out;
        if (d !== ",") fail("',' expected");
      }
    }
    if (c === "[") {
      i++;
      const out = [];
      ws();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(value());
        ws();
        const d = text[i++];
        if (d === "]") return out;
        if (d !== ",") fail("',' expected");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return { num: token(NUMBER) ?? fail("value expected") };
  }
  const v = value();
  ws();
  if (i !== text.length) fail("trailing text");
  return v;
}

const isInteger = (v) => v !== null && typeof v === "object" && /^(0|[1-9][0-9]*)$/.test(v.num) && BigInt(v.num) < 2n ** 64n;

// §3.3 steps 1-4 and the future-ts rule (§3.4 for a sender copy): [result, payload Map].
function openEntry(ct, me, entryFrom, entryTo, senderPk, nowMs) {
  let inner, padded, p;
  try {
    inner = sodium.crypto_box_seal_open(ct, me.pk, me.sk);
  } catch {
    return ["NotForMe"];
  }
  try {
    if (inner.length < 40) throw new Error("too short");
    padded = sodium.crypto_box_open_easy(inner.slice(24), inner.slice(0, 24), senderPk, me.sk);
  } catch {
    return ["Forged"];
  }
  try {
    if (padded.length === 0 || padded.length % 256 !== 0) throw new Error("not whole blocks");
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(sodium.unpad(padded, 256));
    p = parseStrict(text);
    if (!(p instanceof Map) || p.get("v")?.num !== "1") throw new Error("not a version-1 object");
    for (const name of ["id", "from", "to"]) {
      if (typeof p.get(name) !== "string" || !UUID_RE.test(p.get(name))) throw new Error(`bad ${name}`);
    }
    if (!isInteger(p.get("ts")) || typeof p.get("type") !== "string") throw new Error("bad ts or type");
  } catch {
    return ["Malformed"];
  }
  if (p.get("from") !== entryFrom) return ["Forged"];
  if (p.get("to") !== (entryFrom === me.id ? entryTo : me.id)) return ["NotForMe"];
  if (BigInt(p.get("ts").num) > BigInt(nowMs) + 300000n) return ["Malformed"];
  if (p.get("type") !== "text") return ["UnsupportedType", p];
  if (typeof p.get("body") !== "string") return ["Malformed"];
  return ["ok", p];
}

// A strict-parsed value as plain JSON text with sorted keys, to compare payloads.
function canonical(v) {
  if (v instanceof Map) v = Object.fromEntries(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    if ("num" in v && Object.keys(v).length === 1 && typeof v.num === "string") return String(Number(v.num));
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}
const sameJson = (a, b) => canonical(parseStrict(a)) === canonical(b);

let passed = 0, failed = 0;
function check(name, fn) {
  try {
    fn();
    passed++;
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}
function expect(cond, what = "mismatch") {
  if (!cond) throw new Error(what);
}
function raises(fn) {
  try {
    fn();
  } catch {
    return true;
  }
  return false;
}

function party(p) {
  return { id: p.user_id, pk: b64d(p.public_key), sk: b64d(p.secret_key) };
}

function checkRustVectors(v) {
  const nowMs = Date.now();
  const parties = Object.fromEntries(Object.entries(v.parties).map(([n, p]) => [n, party(p)]));
  for (const [name, p] of Object.entries(parties)) {
    check(`rust/keypair/${name}`, () => expect(eq(sodium.crypto_scalarmult_base(p.sk), p.pk)));
  }
  for (const e of v.envelopes) {
    check(`rust/envelope/${e.name}`, () => {
      const ct = b64d(e.ciphertext);
      const [got, p] = openEntry(ct, parties[e.opened_by], e.from, e.to, parties[e.sender].pk, nowMs);
      expect(got === e.expect, `libsodium says ${got}, Rust says ${e.expect}`);
      if (got === "ok") {
        expect(sameJson(e.payload_utf8, p), "payload differs");
        expect((ct.length - 88) % 256 === 0 && ct.length >= 344, `ciphertext length ${ct.length}`);
      }
    });
  }
  const d = v.deterministic_inner;
  check("rust/deterministic_inner", () => {
    const padded = sodium.pad(enc.encode(d.payload_utf8), 256);
    expect(hex(padded) === d.padded_hex, "padding");
    const n = b64d(d.nonce);
    expect(eq(concat(n, sodium.crypto_box_easy(padded, n, parties.bob.pk, parties.alice.sk)), b64d(d.inner)), "inner");
  });
  v.kdf.forEach((k, i) => check(`rust/kdf/${i}`, () => {
    checkKdf({ alg: "argon2id13", ...k });
    const [wrapKey, authKey] = derive(k.password, b64d(k.salt), k.opslimit, k.memlimit);
    expect(b64e(wrapKey) === k.wrap_key, "wrap_key");
    expect(b64e(authKey) === k.auth_key, "auth_key");
  }));
  v.refused_kdf.forEach((k, i) => check(`rust/refused_kdf/${i}`, () => expect(raises(() => checkKdf(k)), "accepted")));
  const w = v.wrap;
  check("rust/wrap", () => {
    const [wrapKey, authKey] = derive(w.password, b64d(w.salt), w.opslimit, w.memlimit);
    expect(b64e(authKey) === w.auth_key, "auth_key");
    const accountKey = unwrap(b64d(w.wrapped_account_key), wrapKey);
    expect(b64e(accountKey) === w.account_key, "account key");
    const n = b64d(w.nonce);
    expect(eq(concat(n, sodium.crypto_secretbox_easy(accountKey, n, wrapKey)), b64d(w.wrapped_account_key_with_nonce)), "fixed nonce");
    const sk = unwrap(b64d(w.wrapped_secret_key), accountKey);
    expect(b64e(sk) === w.secret_key && b64e(sodium.crypto_scalarmult_base(sk)) === w.public_key, "secret key");
    expect(eq(concat(n, sodium.crypto_secretbox_easy(sk, n, accountKey)), b64d(w.wrapped_secret_key_with_nonce)), "fixed nonce sk");
    const [wrong] = derive(w.password + "!", b64d(w.salt), w.opslimit, w.memlimit);
    expect(raises(() => unwrap(b64d(w.wrapped_account_key), wrong)), "a wrong password unwraps");
  });
  v.recovery.forEach((r, i) => check(`rust/recovery/${i}`, () => {
    const key = b64d(r.recovery_key);
    expect(recoveryText(key) === r.text, "text");
    expect(eq(recoveryParse(r.text), key) && eq(recoveryParse(r.text_lowercase_with_o_and_l), key), "parse");
    expect(r.typos.length > 0 && r.typos.every((t) => raises(() => recoveryParse(t))), "a typo parses");
    const rwrap = keyed("sealpost/v1/recovery-wrap", key);
    expect(b64e(rwrap) === r.recovery_wrap_key, "wrap key");
    expect(b64e(keyed("sealpost/v1/recovery-auth", key)) === r.recovery_auth_key, "auth key");
    expect(b64e(unwrap(b64d(r.recovery_wrapped), rwrap)) === r.account_key, "recovery wrap");
  }));
  for (const p of v.padding) {
    check(`rust/padding/${p.unpadded_hex.length / 2}`, () => {
      const data = unhex(p.unpadded_hex);
      expect(hex(sodium.pad(data, 256)) === p.padded_hex, "pad");
      expect(eq(sodium.unpad(unhex(p.padded_hex), 256), data), "unpad");
    });
  }
  v.fingerprints.forEach((f, i) => check(`rust/fingerprint/${i}`, () => {
    const a = fingerprintDigits(f.a_id, b64d(f.a_public_key));
    const b = fingerprintDigits(f.b_id, b64d(f.b_public_key));
    expect(a === f.a_digits && b === f.b_digits, "digits");
    expect([a, b].sort().join("") === f.safety_number, "safety number");
  }));
  for (const b of v.base64url) {
    check(`rust/base64url/${b.text}`, () => expect(b64e(unhex(b.hex)) === b.text && hex(b64d(b.text)) === b.hex));
  }
  const probe = sodium.randombytes_buf(32);
  for (const k of v.refused_public_keys_hex) {
    check(`rust/refused_key/${k}`, () => expect(raises(() => sodium.crypto_scalarmult(probe, unhex(k))), "libsodium accepts it"));
  }
  for (const k of v.accepted_public_keys) {
    check(`rust/accepted_key/${k}`, () => expect(sodium.crypto_scalarmult(probe, b64d(k)).length === 32));
  }
}

// The PyNaCl vectors (shared/vectors/protocol-v1.json): what every client must reproduce.
function checkSharedVectors(v) {
  for (const [text, hx] of Object.entries(v.base64url.valid)) {
    check(`shared/base64url/${text}`, () => expect(hex(b64d(text)) === hx && b64e(unhex(hx)) === text));
  }
  for (const text of v.base64url.invalid) {
    check(`shared/base64url_invalid/${JSON.stringify(text)}`, () => expect(raises(() => b64d(text)), "accepted"));
  }
  v.kdf.forEach((k, i) => check(`shared/kdf/${i}${k.slow ? "/moderate" : ""}`, () => {
    const [wrapKey, authKey] = derive(k.password, b64d(k.salt), k.opslimit, k.memlimit);
    expect(b64e(wrapKey) === k.wrap_key && b64e(authKey) === k.auth_key);
  }));
  for (const w of v.wrap) {
    check("shared/wrap", () => {
      const [wrapKey] = derive(w.password, b64d(w.salt), w.opslimit, w.memlimit);
      const accountKey = b64d(w.account_key);
      const n1 = b64d(w.nonce_account), n2 = b64d(w.nonce_secret);
      expect(eq(concat(n1, sodium.crypto_secretbox_easy(accountKey, n1, wrapKey)), b64d(w.wrapped_account_key)), "account");
      expect(eq(concat(n2, sodium.crypto_secretbox_easy(b64d(w.secret_key), n2, accountKey)), b64d(w.wrapped_secret_key)), "secret");
      const [wrong] = derive(w.wrong_password, b64d(w.salt), w.opslimit, w.memlimit);
      expect(raises(() => unwrap(b64d(w.wrapped_account_key), wrong)), "a wrong password unwraps");
    });
  }
  const r = v.recovery;
  check("shared/recovery", () => {
    const key = b64d(r.recovery_key);
    expect(recoveryText(key) === r.text && eq(recoveryParse(r.text_lowercase_with_o_for_zero), key), "text");
    expect(r.texts_with_typos.every((t) => raises(() => recoveryParse(t))), "a typo parses");
    expect(b64e(keyed("sealpost/v1/recovery-wrap", key)) === r.recovery_wrap_key, "wrap key");
    expect(b64e(keyed("sealpost/v1/recovery-auth", key)) === r.recovery_auth_key, "auth key");
    const n = b64d(r.nonce);
    expect(eq(concat(n, sodium.crypto_secretbox_easy(b64d(r.account_key), n, b64d(r.recovery_wrap_key))), b64d(r.recovery_wrapped)));
  });
  for (const p of v.padding) {
    check(`shared/padding/${p.unpadded_len}`, () => expect(hex(sodium.pad(new Uint8Array(p.unpadded_len).fill(0x41), 256)) === p.padded_hex));
  }
  const env = v.envelopes;
  const parties = { alice: party(env.alice), bob: party(env.bob), mallory: party(env.mallory) };
  const d = env.deterministic_inner;
  check("shared/deterministic_inner", () => {
    const padded = sodium.pad(enc.encode(d.payload_utf8), 256);
    const n = b64d(d.inner_nonce);
    expect(hex(padded) === d.padded_hex && eq(concat(n, sodium.crypto_box_easy(padded, n, parties.bob.pk, parties.alice.sk)), b64d(d.inner)));
  });
  const nowMs = 1795780800123 + 60000; // the vectors' ts, a minute later
  for (const e of env.open_ok) {
    check(`shared/open_ok/${e.name}`, () => {
      const me = parties[e.opened_by ?? "bob"];
      const [got, p] = openEntry(b64d(e.ciphertext), me, e.from, e.to, parties.alice.pk, nowMs);
      expect(got === "ok" && sameJson(e.payload_utf8, p), `got ${got}`);
    });
  }
  for (const e of env.must_fail) {
    check(`shared/must_fail/${e.name}`, () => {
      const [got] = openEntry(b64d(e.ciphertext), parties.bob, e.from, parties.bob.id, parties.alice.pk, nowMs);
      expect(got !== "ok" && (e.error === "any" || got === e.error), `got ${got}, expected ${e.error}`);
    });
  }
  const f = v.fingerprints;
  check("shared/fingerprints", () => {
    const a = fingerprintDigits(f.alice.user_id, b64d(f.alice.public_key));
    const b = fingerprintDigits(f.bob.user_id, b64d(f.bob.public_key));
    expect(a === f.alice.digits && b === f.bob.digits && [a, b].sort().join("") === f.safety_number_alice_bob);
  });
  const probe = sodium.randombytes_buf(32);
  for (const k of v.small_order_public_keys) {
    check(`shared/small_order/${k}`, () => expect(raises(() => sodium.crypto_scalarmult(probe, unhex(k)))));
  }
}

const [rustPath, sharedArg] = process.argv.slice(2);
if (!rustPath) {
  console.error("usage: node check_rust_vectors.mjs rust-vectors.json [protocol-v1.json]");
  process.exit(2);
}
checkRustVectors(JSON.parse(readFileSync(rustPath, "utf8")));
const sharedPath = [sharedArg, join(here, "../../../shared/vectors/protocol-v1.json"),
  join(here, "../../crates/sealpost-crypto/tests/vectors/protocol-v1.json")].find((p) => p && existsSync(p));
checkSharedVectors(JSON.parse(readFileSync(sharedPath, "utf8")));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || !passed ? 1 : 0);
