"""Registers a fresh account on a Sealpost server and prints a bearer token for it.

Used by scripts/schemathesis: schemathesis exercises the authenticated operations with this
token. Nothing here needs the password's real derivation (the server only ever sees the
derived values), so the keys are random, except the public key, which must be a real X25519
key (the server refuses small-order points).
"""

import base64
import json
import os
import sys
import urllib.request

from nacl.public import PrivateKey


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def main() -> None:
    base = sys.argv[1].rstrip("/")
    email = f"schemathesis-{os.urandom(6).hex()}@example.org"
    auth_key = b64(os.urandom(32))
    post(
        base,
        "/v1/accounts",
        {
            "email": email,
            "kdf": {
                "alg": "argon2id13",
                "salt": b64(os.urandom(16)),
                "opslimit": 3,
                "memlimit": 268435456,
            },
            "auth_key": auth_key,
            "wrapped_account_key": b64(os.urandom(72)),
            "public_key": b64(bytes(PrivateKey.generate().public_key)),
            "wrapped_secret_key": b64(os.urandom(72)),
        },
    )
    login = post(base, "/v1/auth/login", {"email": email, "auth_key": auth_key})
    print(login["access_token"])


if __name__ == "__main__":
    main()
