#!/usr/bin/env python3
"""The sealpost CLI against the independent reference client (shared/conformance/refclient.py, PyNaCl).

    cli_interop.py PATH/TO/sealpost

Starts `sealpost serve` on a free port over a temporary SQLite file (INTERACTIVE kdf limits), registers a
refclient user and a CLI user, sends CLI -> refclient and refclient -> CLI, and checks that each side opens
and verifies the other's message (PROTOCOL §3.3), that both compute the same safety number (§6), and that
the CLI shows a ciphertext the refclient posts twice as a replay. Prints each failure and
"N passed, M failed"; exits non-zero on any failure.

Needs a Python with pynacl and requests (the versions shared/conformance/check pins). The refclient is
found at $SEALPOST_REFCLIENT_DIR, else ../shared/conformance beside the repository (or inside it).
"""
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PASSWORD = "interop password ✓"


def refclient_dir():
    candidates = [os.environ.get("SEALPOST_REFCLIENT_DIR", ""),
                  os.path.join(ROOT, "..", "shared", "conformance"),
                  os.path.join(ROOT, "shared", "conformance")]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "refclient.py")):
            return os.path.abspath(c)
    raise SystemExit("cli_interop: refclient.py not found (set SEALPOST_REFCLIENT_DIR)\n0 passed, 1 failed")


class Server:
    """`sealpost serve` on 127.0.0.1:0; the address is read from its log."""

    def __init__(self, binary, workdir):
        db = os.path.join(workdir, "interop.db")
        env = dict(os.environ, SEALPOST_LOG="info")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--database", f"sqlite://{db}",
             "--kdf-opslimit", "2", "--kdf-memlimit", "67108864"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        found = queue.Queue()

        def drain():
            for line in self.proc.stderr:
                if "address=" in line:
                    found.put(line.split("address=", 1)[1].split()[0])
            found.put(None)

        threading.Thread(target=drain, daemon=True).start()
        try:
            addr = found.get(timeout=60)
        except queue.Empty:
            addr = None
        if not addr:
            self.stop()
            raise SystemExit("cli_interop: the server did not start\n0 passed, 1 failed")
        self.url = f"http://{addr}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Cli:
    """One CLI user, with a SEALPOST_HOME of its own."""

    def __init__(self, binary, url, home, email):
        self.binary, self.email = binary, email
        self.env = dict(os.environ, SEALPOST_HOME=home, SEALPOST_SERVER=url, SEALPOST_PASSWORD=PASSWORD)

    def run(self, *args, stdin=None, allowed=(0,)):
        p = subprocess.run([self.binary, *args], env=self.env, input=stdin, capture_output=True, text=True,
                           timeout=120)
        if p.returncode not in allowed:
            raise AssertionError(f"sealpost {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout

    def inbox(self):
        # `inbox` exits 1 when an entry was refused as forged or replayed (the entries are still
        # listed, each with its error_kind): the checks below look at the entries themselves.
        out = self.run("inbox", "--json", allowed=(0, 1))
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(argv[1])
    sys.path.insert(0, refclient_dir())
    import refclient as rc  # noqa: E402  (found at run time)
    import requests  # noqa: E402

    passed, failed = 0, 0

    def check(name, fn):
        nonlocal passed, failed
        try:
            fn()
            passed += 1
            print(f"ok    {name}")
        except Exception as e:  # a check that fails in any way is a failure, reported with its cause
            failed += 1
            print(f"FAIL  {name}: {e}")
            if os.environ.get("SEALPOST_INTEROP_VERBOSE"):
                traceback.print_exc()

    with tempfile.TemporaryDirectory() as work:
        server = Server(binary, work)
        try:
            tag = uuid.uuid4().hex[:12]
            ref = rc.Account(server.url, f"ref-{tag}@example.test", PASSWORD)
            cli = Cli(binary, server.url, os.path.join(work, "cli-home"), f"cli-{tag}@example.test")
            state = {}

            def register_both():
                ref.register()
                ref.login()
                out = cli.run("register", cli.email, "--no-recovery-key")
                assert "Registered" in out, out
                found = ref.lookup(email=cli.email)
                state["cli_id"], state["cli_pk"] = found["user_id"], rc.b64d(found["public_key"])

            check("a refclient user and a CLI user register and sign in", register_both)

            def cli_to_ref():
                text = "Hello from the Rust CLI ✉"
                out = cli.run("send", ref.email, text)
                assert "Sent to" in out, out
                page = ref.fetch()
                ours = [m for m in page["messages"] if m["from"] == state["cli_id"]]
                assert len(ours) == 1, page
                m = ours[0]
                p = ref.open(m, state["cli_pk"])  # §3.3: sealed to ref, boxed by the CLI user's key, replay-checked
                assert p["body"] == text and p["type"] == "text", p
                assert p["from"] == state["cli_id"] and p["to"] == ref.user_id, p
                assert abs(p["ts"] - time.time() * 1000) < 5 * 60 * 1000, p
                assert len(rc.b64d(m["ciphertext"])) == 88 + 256, len(m["ciphertext"])
                uuid.UUID(p["id"])

            check("CLI -> refclient: the refclient opens and verifies it", cli_to_ref)

            def ref_to_cli():
                text = "Hello from PyNaCl 🐍"
                sent = ref.send(state["cli_id"], state["cli_pk"], text)
                lines = cli.inbox()
                got = [l for l in lines if l.get("id") == sent["id"]]
                assert len(got) == 1, lines
                line = got[0]
                assert "error" not in line, line
                assert line["text"] == text, line
                assert line["from"] == ref.email and line["from_id"] == ref.user_id, line
                assert line["to_id"] == state["cli_id"] and line["outgoing"] is False, line
                assert line["seq"] == sent["seq"], line
                assert line["sent_at"].endswith("Z") and "T" in line["sent_at"], line

            check("refclient -> CLI: the CLI opens and verifies it", ref_to_cli)

            def sender_copy():
                lines = cli.inbox()
                copies = [l for l in lines if l.get("outgoing")]
                assert len(copies) == 1, lines
                assert copies[0]["to_id"] == ref.user_id and copies[0]["text"] == "Hello from the Rust CLI ✉", copies

            check("the CLI opens its own sender copy", sender_copy)

            def safety_numbers():
                out = cli.run("safety-number", ref.email)
                digits = [line.replace(" ", "") for line in out.splitlines()
                          if line.strip() and line.strip().replace(" ", "").isdigit()]
                assert len(digits) == 1 and len(digits[0]) == 60, out
                expected = rc.safety_number(state["cli_id"], state["cli_pk"], ref.user_id, ref.pk)
                assert digits[0] == expected, (digits[0], expected)

            check("both compute the same safety number", safety_numbers)

            def replay():
                payload = {"v": 1, "id": str(uuid.uuid4()), "from": ref.user_id, "to": state["cli_id"],
                           "ts": int(time.time() * 1000), "type": "text", "body": "sent once, posted twice"}
                ct = rc.b64e(rc.seal(payload, state["cli_pk"], ref.sk))
                ids = []
                for _ in range(2):
                    r = requests.post(f"{server.url}/v1/messages", headers={"Authorization": f"Bearer {ref.token}"},
                                      json={"to": state["cli_id"], "ciphertext": ct, "key_version": 1,
                                            "sender_key_version": 1}, timeout=30)
                    r.raise_for_status()
                    ids.append(r.json()["id"])
                lines = {l["id"]: l for l in cli.inbox()}
                first, second = lines[ids[0]], lines[ids[1]]
                assert first.get("text") == "sent once, posted twice", first
                assert second.get("error_kind") == "replayed" and "text" not in second, second

            check("the CLI shows a refclient ciphertext posted twice as a replay", replay)

            def forged():
                # A message boxed by another key than the refclient user's published one: the CLI refuses it.
                _, stranger_sk = rc.sb.crypto_box_keypair()
                payload = {"v": 1, "id": str(uuid.uuid4()), "from": ref.user_id, "to": state["cli_id"],
                           "ts": int(time.time() * 1000), "type": "text", "body": "forged"}
                ct = rc.b64e(rc.seal(payload, state["cli_pk"], stranger_sk))
                r = requests.post(f"{server.url}/v1/messages", headers={"Authorization": f"Bearer {ref.token}"},
                                  json={"to": state["cli_id"], "ciphertext": ct, "key_version": 1,
                                        "sender_key_version": 1}, timeout=30)
                r.raise_for_status()
                line = {l["id"]: l for l in cli.inbox()}[r.json()["id"]]
                assert line.get("error_kind") == "forged" and "text" not in line, line

            check("the CLI refuses a message not boxed by the sender's key", forged)
        finally:
            server.stop()

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
