// Cross-client, both ways, against one sealpost serve: the JS SDK and the Rust CLI (`sealpost` itself)
// seal for each other, open each other's messages, and compute the same safety number.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startServer, client, email } from "../support/server.mjs";
import { serverBin } from "../support/paths.mjs";
import { codeOf } from "../support/codes.mjs";

const run = promisify(execFile);
let server;
let home;
before(async () => {
  server = await startServer();
  home = await mkdtemp(join(tmpdir(), "sealpost-cli-home-"));
});
after(async () => {
  await server?.stop();
  await rm(home, { recursive: true, force: true });
});

/** Runs the CLI as `who` (its own state folder), with the password from the environment. */
async function cli(who, password, ...args) {
  return cliWith(who, { SEALPOST_PASSWORD: password }, ...args);
}

/** Runs the CLI as `who` with more environment (the password, the recovery key, a new password). */
async function cliWith(who, extra, ...args) {
  const env = {
    ...process.env,
    SEALPOST_HOME: join(home, who),
    SEALPOST_SERVER: server.url,
    ...extra,
  };
  const { stdout } = await run(serverBin(), args, { env, timeout: 60000 });
  return stdout;
}

const TEXT_JS = 'Hello from JavaScript: ünïcödé ✓ 🔐 "quoted"\nsecond line';
const TEXT_CLI = "Hello from the Rust CLI: ∑ ≠ ∞";

test("JS seals and the CLI opens; the CLI seals and JS opens; both compute the same safety number", async () => {
  const carol = email("carol-cli");
  const dave = email("dave-js");
  await cli("carol", "carol password", "register", carol, "--no-recovery-key");
  const js = client(server);
  await js.register(dave, "dave password");

  // JS → CLI
  const sent = await js.messages.send(carol, TEXT_JS);
  const lines = (await cli("carol", "carol password", "inbox", "--json"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const got = lines.find((l) => l.seq === sent.seq && !l.outgoing);
  assert.ok(got, `the CLI did not list #${sent.seq}`);
  assert.equal(got.error, undefined, got.error);
  assert.equal(got.text, TEXT_JS);
  assert.equal(got.from, dave);
  assert.equal(got.from_id, js.account().userId);

  // CLI → JS
  await cli("carol", "carol password", "send", dave, TEXT_CLI);
  const page = await js.messages.list();
  const incoming = page.messages.filter((r) => !r.message?.outgoing);
  assert.equal(incoming.length, 1);
  assert.ok(incoming[0].ok, incoming[0].error?.message);
  assert.equal(incoming[0].message.text, TEXT_CLI);
  assert.equal(incoming[0].message.fromEmail, carol);
  // The CLI's sender copy of it opens in the CLI, and JS's sender copy opens in JS.
  const carolOwn = (await cli("carol", "carol password", "inbox", "--json"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.ok(carolOwn.some((l) => l.outgoing && l.text === TEXT_CLI && l.error === undefined));
  assert.ok(page.messages.some((r) => r.ok && r.message.outgoing && r.message.text === TEXT_JS));

  // The same safety number on both sides.
  const out = await cli("carol", "carol password", "safety-number", dave);
  const groups = out
    .split("\n")
    .map((l) => l.trim())
    .find((l) => /^(\d{5} ){11}\d{5}$/.test(l));
  assert.ok(groups, out);
  const fromJs = await js.contacts.safetyNumber(carol);
  assert.equal(groups.replaceAll(" ", ""), fromJs.pinned.safetyNumber);
});

test("a key rotated in the CLI is a key change in JS, and trusted it opens; a rotation in JS shows in the CLI", async () => {
  const erin = email("erin-cli");
  const finn = email("finn-js");
  await cli("erin", "erin password", "register", erin, "--no-recovery-key");
  const js = client(server);
  await js.register(finn, "finn password");
  await js.messages.send(erin, "first");
  await cli("erin", "erin password", "rotate-keys");
  await assert.rejects(js.messages.send(erin, "second"), { code: "key_changed" });
  await js.contacts.trust(erin);
  await js.messages.send(erin, "second");
  const lines = (await cli("erin", "erin password", "inbox", "--json"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.filter((l) => !l.outgoing).map((l) => l.text),
    ["first", "second"],
  );
  await js.rotateKeys("finn password");
  await assert.rejects(cli("erin", "erin password", "send", finn, "to your new key?"), (e) =>
    /CHANGED/.test(e.stdout + e.stderr),
  );
});

test("recovery keys cross over: the CLI recovers with a key JS made, JS recovers with a key the CLI made", async () => {
  const gina = email("gina-js");
  const hugo = email("hugo-cli");
  const js = client(server);
  const { recoveryKey } = await js.register(gina, "gina password");
  await js.messages.send(gina, "note to self before recovery");
  await cliWith(
    "gina",
    { SEALPOST_RECOVERY_KEY: recoveryKey, SEALPOST_NEW_PASSWORD: "gina new" },
    "recover",
    gina,
  );
  const lines = (await cli("gina", "gina new", "inbox", "--json"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => [l.text, l.error]),
    [["note to self before recovery", undefined]],
  );

  const out = await cli("hugo", "hugo password", "register", hugo);
  const key = /([0-9A-Z]{4}-){13}[0-9A-Z]{4}/.exec(out)?.[0];
  assert.ok(key, out);
  await cli("hugo", "hugo password", "send", hugo, "hugo's note");
  const other = client(server);
  await other.recover(hugo, key, "hugo new");
  const page = await other.messages.list();
  assert.deepEqual(
    page.messages.map((r) => r.message?.text),
    ["hugo's note"],
  );
  assert.equal(await codeOf(client(server).login(hugo, "hugo password")), "wrong_password");
});

test("a password JS set signs the CLI in, and one the CLI set signs JS in (the same kdf and wraps)", async () => {
  const ivy = email("ivy");
  const js = client(server);
  await js.register(ivy, "first");
  await js.messages.send(ivy, "kept across both changes");
  await js.changePassword("first", "second");
  await cli("ivy", "second", "login", ivy);
  await cliWith("ivy", { SEALPOST_PASSWORD: "second", SEALPOST_NEW_PASSWORD: "third" }, "passwd");
  const again = client(server);
  await again.login(ivy, "third");
  assert.deepEqual(
    (await again.messages.list()).messages.map((r) => r.message?.text),
    ["kept across both changes"],
  );
});
