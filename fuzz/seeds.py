#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target to fuzz/corpus/<target>/: valid inputs and
near-valid ones, each named for what it is. Run it again after changing a target's input layout;
the tokens are signed with the targets' fixed key (sealpost_server::fuzzing::KEY)."""
import base64, hashlib, hmac, json, os, struct

KEY = b"sealpost fuzzing key, never a real one"
NOW = 1_795_780_800
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
ALICE = "00000000-0000-0000-0000-0000000a11ce"
BOB = "00000000-0000-0000-0000-000000000b0b"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims: dict, header=None, key=KEY) -> str:
    header = header or {"alg": "HS256", "typ": "JWT"}
    signed = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
        json.dumps(claims, separators=(",", ":")).encode())
    return signed + "." + b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())


def claims(exp: int) -> dict:
    return {"sub": ALICE, "sid": BOB, "iat": NOW - 60, "exp": exp}


def write(target: str, name: str, data) -> None:
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# b64: canonical texts and each kind of refusal.
for name, text in {
    "empty": "", "two": "AA", "three": "AAA", "four": "AAAA", "urlsafe": "-_-_",
    "key": b64(bytes(range(32))), "unused_bits": "AB", "padding": "AA==",
    "one_mod_four": "AAAAA", "standard_alphabet": "a+b/", "space": "AA AA",
}.items():
    write("b64", name, text)

# body: the first byte is the route (see fuzzing::body), the rest its JSON body.
pk, k32, w72 = b64(bytes([9]) + bytes(31)), b64(bytes(range(32))), b64(bytes(72))
ct = b64(bytes(344))
kdf = {"alg": "argon2id13", "salt": b64(bytes(16)), "opslimit": 2, "memlimit": 67108864}
recovery = {"auth_key": k32, "wrapped_account_key": w72}
bodies = {
    "register": (0, {"email": "alice@example.com", "kdf": kdf, "auth_key": k32,
                     "wrapped_account_key": w72, "public_key": pk, "wrapped_secret_key": w72,
                     "recovery": recovery}),
    "register_small_order_key": (0, {"email": "a@b.c", "kdf": kdf, "auth_key": k32,
                                     "wrapped_account_key": w72, "public_key": b64(bytes(32)),
                                     "wrapped_secret_key": w72}),
    "register_nested_unknown": (0, {"email": "a@b.c", "kdf": dict(kdf, pepper=1)}),
    "change_password": (1, {"current_auth_key": k32, "kdf": kdf, "auth_key": k32,
                            "wrapped_account_key": w72}),
    "set_recovery": (2, {"current_auth_key": k32, "recovery": recovery}),
    "recover": (3, {"email": "Alice@Example.com ", "recovery_auth_key": k32}),
    "rotate": (4, {"current_auth_key": k32, "public_key": pk, "key_version": 2,
                   "wrapped_secret_key": w72}),
    "delete": (5, {"current_auth_key": k32}),
    "prelogin": (6, {"email": "alice@example.com"}),
    "login": (7, {"email": "alice@example.com", "auth_key": k32, "device_name": "laptop"}),
    "refresh": (8, {"refresh_token": k32}),
    "send": (9, {"to": BOB, "ciphertext": ct, "key_version": 1, "sender_key_version": 1,
                 "sender_copy": {"ciphertext": ct, "key_version": 1}}),
    "send_plaintext": (9, {"to": BOB, "plaintext": "hello", "sender_copy": {"plaintext": 1}}),
    "send_odd_size": (9, {"to": BOB, "ciphertext": b64(bytes(345)), "key_version": 1,
                          "sender_key_version": 1}),
}
for name, (route, body) in bodies.items():
    write("body", name, bytes([route]) + json.dumps(body).encode())
write("body", "not_json", b"\x09{\"to\":")
write("body", "array", b"\x00[]")
# Found by the target: serde reads a struct from an array of its fields; now refused.
write("body", "delete_as_array", b"\x05" + json.dumps([k32]).encode())
write("body", "nested_array", bytes([2]) + json.dumps({"current_auth_key": k32, "recovery": [k32, w72]}).encode())

# envelope: the first byte is the mode (see fuzz_targets/envelope.rs).
payload = {"v": 1, "id": "0192e2a0-0000-7000-8000-000000000001", "from": ALICE, "to": BOB,
           "ts": NOW * 1000, "type": "text", "body": "Hello, Bob!"}
write("envelope", "opaque", b"\x00" + bytes(344))
write("envelope", "payload", b"\x01" + json.dumps(payload).encode())
write("envelope", "payload_other_type", b"\x01" + json.dumps(dict(payload, type="image")).encode())
write("envelope", "payload_duplicate_key", b"\x01" + json.dumps(payload)[:-1].encode() + b',"v":1}')
write("envelope", "payload_for_someone_else", b"\x01" + json.dumps(dict(payload, to=ALICE)).encode())
write("envelope", "padded", b"\x02" + b"{}" + b"\x80" + bytes(253))
write("envelope", "padded_no_marker", b"\x02" + bytes(256))
write("envelope", "inner_short", b"\x03" + bytes(30))
write("envelope", "round_trip", b"\x04" + struct.pack("<Q", NOW * 1000) + "Hello, Bob! ✉".encode())

# jwt: the first byte is the mode (see fuzzing::jwt).
write("jwt", "valid", b"\x00" + token(claims(NOW + 900)).encode())
write("jwt", "end_of_time", b"\x00" + token(claims(2**63 - 1)).encode())
write("jwt", "expired", b"\x00" + token(claims(NOW - 60)).encode())
write("jwt", "other_key", b"\x00" + token(claims(NOW + 900), key=b"another key").encode())
write("jwt", "alg_none", b"\x00" + token(claims(NOW + 900), {"alg": "none"}).encode())
write("jwt", "signed_claims", b"\x01" + json.dumps(claims(NOW + 900)).encode())
write("jwt", "signed_header_and_claims",
      b"\x01" + b'{"alg":"HS256"}' + b"\xff" + json.dumps(claims(-2**63)).encode())
write("jwt", "server_signed", b"\x02" + bytes(range(48)))

# stream_auth: the first byte is the frame's kind (see fuzzing::stream_first_frame).
def frame(**fields) -> bytes:
    return b"\x00" + json.dumps(fields).encode()

write("stream_auth", "auth", frame(type="auth", access_token=token(claims(NOW + 900)), after=0))
write("stream_auth", "auth_end_of_time", frame(type="auth", access_token=token(claims(2**63 - 1))))
write("stream_auth", "auth_negative_after", frame(type="auth", access_token="x", after=-1))
write("stream_auth", "wrong_type", frame(type="hello", access_token="x"))
write("stream_auth", "unknown_field", frame(type="auth", access_token="x", extra=1))
write("stream_auth", "binary", b"\x01" + frame(type="auth", access_token="x")[1:])
write("stream_auth", "ping", b"\x02ping")
write("stream_auth", "oversized", b"\x03" + frame(type="auth", access_token="x")[1:])
