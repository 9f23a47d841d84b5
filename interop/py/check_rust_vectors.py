"""Checks vectors made by sealpost-crypto (Rust) with PyNaCl, i.e. real libsodium.

Run: python check_rust_vectors.py rust-vectors.json   (make it with
`cargo run -q --release -p sealpost-crypto --example make_vectors`). Written from PROTOCOL.md, not
from the Rust code: every envelope is opened with libsodium and the §3.3 checks, every derived or
wrapped value recomputed. Prints each failure and "N passed, M failed"; exits non-zero on any failure.
"""
import base64
import json
import os
import sys
import time
import unicodedata
import uuid

import nacl.bindings as sb

B64URL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
OPS_MIN, OPS_MAX, MEM_MIN, MEM_MAX = 2, 10, 67108864, 1073741824


def b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64d(s: str) -> bytes:
    """§1: canonical base64url without padding, or ValueError."""
    if not isinstance(s, str) or any(c not in B64URL for c in s) or len(s) % 4 == 1:
        raise ValueError("not base64url without padding")
    out = base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_", validate=True)
    if b64e(out) != s:
        raise ValueError("non-zero unused bits")
    return out


def generichash(outlen: int, msg: bytes, key: bytes = b"") -> bytes:
    return sb.crypto_generichash_blake2b_salt_personal(msg, digest_size=outlen, key=key)


def derive(password: str, salt: bytes, ops: int, mem: int):
    master = sb.crypto_pwhash_alg(64, unicodedata.normalize("NFC", password).encode(), salt, ops, mem,
                                  sb.crypto_pwhash_ALG_ARGON2ID13)
    return master[:32], master[32:]


def check_kdf(kdf: dict):
    """§2.1: refuse a weak or odd kdf before deriving anything."""
    salt = b64d(kdf["salt"])
    ops, mem = kdf["opslimit"], kdf["memlimit"]
    if kdf.get("alg") != "argon2id13" or len(salt) != 16 or not (OPS_MIN <= ops <= OPS_MAX and MEM_MIN <= mem <= MEM_MAX):
        raise ValueError("refused kdf")


def unwrap(blob: bytes, key: bytes) -> bytes:
    if len(blob) != 72:
        raise ValueError("a wrapped key is 72 bytes")
    return sb.crypto_secretbox_open(blob[24:], blob[:24], key)


def recovery_text(key: bytes) -> str:
    n = int.from_bytes(key + generichash(32, b"sealpost/v1/recovery-check", key)[:3], "big")
    sym = "".join(CROCKFORD[(n >> (5 * (55 - i))) & 31] for i in range(56))
    return "-".join(sym[i:i + 4] for i in range(0, 56, 4))


def recovery_parse(text: str) -> bytes:
    t = text.replace(" ", "").replace("-", "").upper().replace("O", "0").replace("I", "1").replace("L", "1")
    if len(t) != 56 or any(c not in CROCKFORD for c in t):
        raise ValueError("that recovery key has a typo")
    n = 0
    for c in t:
        n = (n << 5) | CROCKFORD.index(c)
    raw = n.to_bytes(35, "big")
    if generichash(32, b"sealpost/v1/recovery-check", raw[:32])[:3] != raw[32:]:
        raise ValueError("that recovery key has a typo")
    return raw[:32]


def fingerprint_digits(user_id: str, pk: bytes) -> str:
    fp = generichash(30, b"sealpost/v1/fingerprint" + uuid.UUID(user_id).bytes + pk)
    return "".join("%05d" % (int.from_bytes(fp[i:i + 5], "big") % 100000) for i in range(0, 30, 5))


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate key")
        obj[k] = v
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _canonical_uuid(value) -> str:
    if not isinstance(value, str) or str(uuid.UUID(value)) != value:
        raise ValueError("not a lowercase hyphenated uuid")
    return value


def open_entry(ct: bytes, my_id: str, my_pk: bytes, my_sk: bytes, entry_from: str, entry_to: str,
               sender_pk: bytes, now_ms: int):
    """§3.3 steps 1-4 and the future-ts rule (§3.4 for a sender copy): ("ok", payload) or (error, None)."""
    try:
        inner = sb.crypto_box_seal_open(ct, my_pk, my_sk)
    except Exception:
        return "NotForMe", None
    try:
        if len(inner) < 40:
            raise ValueError("too short")
        padded = sb.crypto_box_open(inner[24:], inner[:24], sender_pk, my_sk)
    except Exception:
        return "Forged", None
    try:
        if len(padded) == 0 or len(padded) % 256:
            raise ValueError("not whole blocks")
        p = json.loads(sb.sodium_unpad(padded, 256).decode("utf-8"), object_pairs_hook=_no_duplicates,
                       parse_constant=_reject_constant)
        if not isinstance(p, dict) or type(p.get("v")) is not int or p["v"] != 1:
            raise ValueError("not a version-1 object")
        for name in ("id", "from", "to"):
            _canonical_uuid(p.get(name))
        if type(p.get("ts")) is not int or not 0 <= p["ts"] < 2 ** 64 or not isinstance(p.get("type"), str):
            raise ValueError("bad ts or type")
    except Exception:
        return "Malformed", None
    if p["from"] != entry_from:
        return "Forged", None
    if p["to"] != (entry_to if entry_from == my_id else my_id):
        return "NotForMe", None
    if p["ts"] > now_ms + 5 * 60 * 1000:
        return "Malformed", None
    if p["type"] != "text":
        return "UnsupportedType", p
    if not isinstance(p.get("body"), str):
        return "Malformed", None
    return "ok", p


class Checker:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, fn):
        try:
            fn()
            self.passed += 1
        except Exception as e:  # every failure is reported, none stops the run
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")


def expect(cond, what="mismatch"):
    if not cond:
        raise AssertionError(what)


def raises(fn):
    try:
        fn()
    except Exception:
        return True
    return False


def main(path: str) -> int:
    v = json.load(open(path, encoding="utf-8"))
    c = Checker()
    now_ms = int(time.time() * 1000)
    parties = {name: (p["user_id"], b64d(p["public_key"]), b64d(p["secret_key"])) for name, p in v["parties"].items()}
    for name, (_, pk, sk) in parties.items():
        c.check(f"keypair/{name}", lambda pk=pk, sk=sk: expect(sb.crypto_scalarmult_base(sk) == pk))

    for e in v["envelopes"]:
        def envelope(e=e):
            my_id, my_pk, my_sk = parties[e["opened_by"]]
            ct = b64d(e["ciphertext"])
            got, payload = open_entry(ct, my_id, my_pk, my_sk, e["from"], e["to"], parties[e["sender"]][1], now_ms)
            expect(got == e["expect"], f"libsodium says {got}, Rust says {e['expect']}")
            if got == "ok":
                expect(payload == json.loads(e["payload_utf8"]), "payload differs")
                expect((len(ct) - 88) % 256 == 0 and len(ct) >= 344, f"ciphertext length {len(ct)}")
        c.check(f"envelope/{e['name']}", envelope)

    d = v["deterministic_inner"]

    def inner():
        padded = sb.sodium_pad(d["payload_utf8"].encode(), 256)
        expect(padded.hex() == d["padded_hex"], "padding")
        n = b64d(d["nonce"])
        expect(n + sb.crypto_box(padded, n, parties["bob"][1], parties["alice"][2]) == b64d(d["inner"]), "inner box")
    c.check("deterministic_inner", inner)

    for i, k in enumerate(v["kdf"]):
        def kdf(k=k):
            check_kdf({"alg": "argon2id13", **k})
            wrap_key, auth_key = derive(k["password"], b64d(k["salt"]), k["opslimit"], k["memlimit"])
            expect(b64e(wrap_key) == k["wrap_key"], "wrap_key")
            expect(b64e(auth_key) == k["auth_key"], "auth_key")
        c.check(f"kdf/{i}", kdf)
    for i, k in enumerate(v["refused_kdf"]):
        c.check(f"refused_kdf/{i}", lambda k=k: expect(raises(lambda: check_kdf(k)), "libsodium side accepts it"))

    w = v["wrap"]

    def wrap():
        wrap_key, auth_key = derive(w["password"], b64d(w["salt"]), w["opslimit"], w["memlimit"])
        expect(b64e(auth_key) == w["auth_key"], "auth_key")
        account_key = unwrap(b64d(w["wrapped_account_key"]), wrap_key)
        expect(b64e(account_key) == w["account_key"], "account key")
        n = b64d(w["nonce"])
        expect(n + sb.crypto_secretbox(account_key, n, wrap_key) == b64d(w["wrapped_account_key_with_nonce"]), "fixed nonce")
        sk = unwrap(b64d(w["wrapped_secret_key"]), account_key)
        expect(b64e(sk) == w["secret_key"] and b64e(sb.crypto_scalarmult_base(sk)) == w["public_key"], "secret key")
        expect(n + sb.crypto_secretbox(sk, n, account_key) == b64d(w["wrapped_secret_key_with_nonce"]), "fixed nonce sk")
        wrong, _ = derive(w["password"] + "!", b64d(w["salt"]), w["opslimit"], w["memlimit"])
        expect(raises(lambda: unwrap(b64d(w["wrapped_account_key"]), wrong)), "wrong password unwraps")
    c.check("wrap", wrap)

    for i, r in enumerate(v["recovery"]):
        def recovery(r=r):
            key = b64d(r["recovery_key"])
            expect(recovery_text(key) == r["text"], "text")
            expect(recovery_parse(r["text"]) == key and recovery_parse(r["text_lowercase_with_o_and_l"]) == key, "parse")
            expect(r["typos"] and all(raises(lambda t=t: recovery_parse(t)) for t in r["typos"]), "a typo parses")
            rwrap = generichash(32, b"sealpost/v1/recovery-wrap", key)
            expect(b64e(rwrap) == r["recovery_wrap_key"], "wrap key")
            expect(b64e(generichash(32, b"sealpost/v1/recovery-auth", key)) == r["recovery_auth_key"], "auth key")
            expect(b64e(unwrap(b64d(r["recovery_wrapped"]), rwrap)) == r["account_key"], "recovery wrap")
        c.check(f"recovery/{i}", recovery)

    for p in v["padding"]:
        def padding(p=p):
            data = bytes.fromhex(p["unpadded_hex"])
            expect(sb.sodium_pad(data, 256).hex() == p["padded_hex"], "pad")
            expect(sb.sodium_unpad(bytes.fromhex(p["padded_hex"]), 256) == data, "unpad")
        c.check(f"padding/{len(p['unpadded_hex']) // 2}", padding)

    for i, f in enumerate(v["fingerprints"]):
        def fingerprints(f=f):
            a = fingerprint_digits(f["a_id"], b64d(f["a_public_key"]))
            b = fingerprint_digits(f["b_id"], b64d(f["b_public_key"]))
            expect(a == f["a_digits"] and b == f["b_digits"], "digits")
            expect("".join(sorted([a, b])) == f["safety_number"], "safety number")
        c.check(f"fingerprint/{i}", fingerprints)

    for b in v["base64url"]:
        c.check(f"base64url/{b['text']!r}",
                lambda b=b: expect(b64e(bytes.fromhex(b["hex"])) == b["text"] and b64d(b["text"]).hex() == b["hex"]))

    probe = os.urandom(32)
    for hx in v["refused_public_keys_hex"]:
        c.check(f"refused_key/{hx}",
                lambda hx=hx: expect(raises(lambda: sb.crypto_scalarmult(probe, bytes.fromhex(hx))), "libsodium accepts it"))
    for pk in v["accepted_public_keys"]:
        c.check(f"accepted_key/{pk}", lambda pk=pk: expect(len(sb.crypto_scalarmult(probe, b64d(pk))) == 32))

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed or not c.passed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_rust_vectors.py rust-vectors.json")
    sys.exit(main(sys.argv[1]))
