"""Measures libsodium (through PyNaCl) sealing and opening envelopes exactly as PROTOCOL §3.2-3.3
compose them, at the sizes of crates/sealpost-crypto/benches/crypto.rs, for a Rust/libsodium ratio.

Run: python bench_libsodium.py [seconds per case]. Prints seal/s and open/s per payload size. The
JSON encode/decode and the §3.3 field checks run in Python, as a Python client would run them; the
crypto runs in C.
"""
import json
import os
import sys
import time
import uuid

import nacl
import nacl.bindings as sb

NOW_MS = 1795780800123
A, B = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))


def payload(size: int) -> dict:
    p = {"v": 1, "id": str(uuid.uuid4()), "from": A, "to": B, "ts": NOW_MS, "type": "text", "body": ""}
    p["body"] = "x" * (size - len(json.dumps(p, separators=(",", ":"))))
    assert len(json.dumps(p, separators=(",", ":"))) == size
    return p


def seal(p: dict, recipient_pk: bytes, sender_sk: bytes) -> bytes:
    padded = sb.sodium_pad(json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode(), 256)
    n = os.urandom(24)
    return sb.crypto_box_seal(n + sb.crypto_box(padded, n, recipient_pk, sender_sk), recipient_pk)


def open_(ct: bytes, my_pk: bytes, my_sk: bytes, sender_pk: bytes) -> dict:
    inner = sb.crypto_box_seal_open(ct, my_pk, my_sk)
    p = json.loads(sb.sodium_unpad(sb.crypto_box_open(inner[24:], inner[:24], sender_pk, my_sk), 256))
    assert p["v"] == 1 and p["from"] == A and p["to"] == B and p["ts"] <= NOW_MS + 300000 and p["type"] == "text"
    return p


def rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(50):
            fn()
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    apk, ask = sb.crypto_box_keypair()
    bpk, bsk = sb.crypto_box_keypair()
    print(f"PyNaCl {nacl.__version__} (libsodium), {seconds:g} s per case")
    for size in (200, 65279):
        p = payload(size)
        ct = seal(p, bpk, ask)
        assert open_(ct, bpk, bsk, apk) == p and len(ct) == 88 + 256 * (size // 256 + 1)
        seal_rate = rate(lambda: seal(p, bpk, ask), seconds)
        open_rate = rate(lambda: open_(ct, bpk, bsk, apk), seconds)
        print(f"{size}B: seal {seal_rate:,.0f}/s ({1e6 / seal_rate:.1f} us), open {open_rate:,.0f}/s ({1e6 / open_rate:.1f} us)")


if __name__ == "__main__":
    main()
