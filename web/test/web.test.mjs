// The browser client end to end: headless Chromium (playwright-core) against a real `sealpost serve`
// serving this build, the Rust CLI on the other side, axe on every screen, and every request body
// the pages send checked for plaintexts and passwords.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { client as sdkClient } from "../../clients/js/test/support/server.mjs";
import { startServer, cli, openBrowser, axe, shot, email, axeRuns, webRoot } from "./support.mjs";

const WAIT = { timeout: 60000 };
let server;
const browsers = [];
/** Every plaintext and password the tests type; none may be in a request body. */
const secrets = [];

async function browser() {
  const b = await openBrowser();
  b.context.setDefaultTimeout(60000);
  browsers.push(b);
  return b;
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  await server?.stop();
  await mkdir(join(webRoot, "test-artifacts"), { recursive: true });
  await writeFile(join(webRoot, "test-artifacts/axe.json"), JSON.stringify(axeRuns, null, 2));
  console.log(`axe checks run: ${axeRuns.count} (${axeRuns.screens.join(", ")})`);
});

/** Registers in the page: the recovery key screen, its required confirmation, then the list. */
async function register(page, who, password, screenshots = false, url = server.url) {
  await page.goto(url);
  await page.getByRole("link", { name: "Register" }).click();
  await page.getByRole("heading", { name: "Create an account" }).waitFor();
  if (screenshots) {
    assert.deepEqual(await axe(page, "register"), []);
    await shot(page, "02-register");
  }
  await page.getByLabel("Email").fill(who);
  await page.getByLabel(/^Password/).fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "Your recovery key" }).waitFor();
  const key = await page.locator("#recovery-key").textContent();
  assert.match(key, /^([0-9A-Z]{4}-){13}[0-9A-Z]{4}$/);
  const go = page.getByRole("button", { name: "Continue" });
  assert.equal(await go.isDisabled(), true, "Continue is disabled until the key is said to be saved");
  if (screenshots) {
    assert.deepEqual(await axe(page, "recovery key"), []);
    await shot(page, "03-recovery-key");
  }
  await page.getByLabel("I have saved my recovery key somewhere safe").check();
  await go.click();
  await page.getByRole("heading", { name: "Conversations" }).waitFor();
  return key;
}

async function openConversation(page, peer) {
  await page.getByLabel("Start a conversation with (email)").fill(peer);
  await page.getByRole("button", { name: "Open" }).click();
  await page.getByRole("log").waitFor();
}

async function send(page, text) {
  secrets.push(text);
  await page.getByRole("textbox", { name: "Message" }).fill(text);
  await page.getByRole("textbox", { name: "Message" }).press("Enter");
  await page.getByRole("log").getByText(text).waitFor(WAIT);
}

/** What the CLI's `inbox --json` lists for `who`: one object a line. */
async function inboxOf(who, password) {
  return (await cli(server, who, password, "inbox", "--json")).trim().split("\n").map((l) => JSON.parse(l));
}

/** A pattern that matches `text` as it is (an email's dots included). */
function literal(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test("first load weighs at most 300 KB gzipped, with an SVG favicon the CSP allows and no failed request", async () => {
  const b = await browser();
  const page = await b.page();
  const bodies = [];
  const failed = [];
  page.on("response", async (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    bodies.push(r.body().then((buf) => ({ url: r.url(), gz: gzipSync(buf, { level: 9 }).length })));
  });
  await page.goto(server.url, { waitUntil: "load" });
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  const sizes = await Promise.all(bodies);
  const total = sizes.reduce((n, s) => n + s.gz, 0);
  await mkdir(join(webRoot, "test-artifacts"), { recursive: true });
  await writeFile(join(webRoot, "test-artifacts/size.json"), JSON.stringify({ total, files: sizes }, null, 2));
  console.log(`first load: ${(total / 1024).toFixed(1)} KB gzipped over ${sizes.length} files`);
  assert.ok(sizes.some((s) => s.url.endsWith(".js")), "the script was loaded");
  assert.ok(total <= 300 * 1024, `first load ${total} bytes gzipped`);

  // The favicon: a hashed SVG of this build, served as SVG, and drawn under the page's own CSP
  // (an <img> of it decodes; a refusal by img-src would fail and log an error).
  const icon = await page.locator('link[rel="icon"]').getAttribute("href");
  assert.match(icon, /^\/assets\/favicon-[\w-]+\.svg$/);
  const answer = await page.request.get(`${server.url}${icon}`);
  assert.equal(answer.status(), 200);
  assert.equal(answer.headers()["content-type"], "image/svg+xml");
  assert.match((await answer.text()).trimStart(), /^<svg /);
  const drawn = await page.evaluate(async (src) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    return img.naturalWidth;
  }, icon);
  assert.equal(drawn, 32);
  assert.deepEqual(failed, [], "no request of the first load failed (no favicon 404)");
  assert.deepEqual(b.errors, []);
  await page.close();
});

test("Alice in the browser and Bob on the CLI: send, live reply, safety number, reload, key change, logout", async () => {
  const alice = email("alice");
  const bob = email("bob");
  const pa = "alice's browser password";
  const pb = "bob's cli password";
  secrets.push(pa);
  await cli(server, "bob", pb, "register", bob);

  const b = await browser();
  const page = await b.page();
  await page.goto(server.url);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.deepEqual(await axe(page, "sign in"), []);
  await shot(page, "01-sign-in");
  await register(page, alice, pa, true);
  assert.deepEqual(await axe(page, "conversations (empty)"), []);

  await openConversation(page, bob);
  await send(page, "Hello Bob, from the browser");
  const inbox = await inboxOf("bob", pb);
  assert.ok(
    inbox.some((m) => m.text === "Hello Bob, from the browser" && m.from === alice),
    JSON.stringify(inbox),
  );

  // Bob replies from the CLI: the stream brings it in without a reload, and it is announced.
  secrets.push("Hi Alice, from the terminal");
  await cli(server, "bob", pb, "send", alice, "Hi Alice, from the terminal");
  await page.getByRole("log").getByText("Hi Alice, from the terminal").waitFor(WAIT);
  await page.locator("#announcer").getByText(`New message from ${bob}`).waitFor(WAIT);
  assert.deepEqual(await axe(page, "conversation"), []);
  await shot(page, "05-conversation");

  await page.getByRole("link", { name: /Safety number/ }).click();
  const groups = page.getByRole("list", { name: "Safety number" }).getByRole("listitem");
  await groups.first().waitFor();
  const digits = await groups.allTextContents();
  assert.equal(digits.length, 12);
  assert.ok(digits.every((g) => /^\d{5}$/.test(g)), digits.join(" "));
  assert.deepEqual(await axe(page, "contact"), []);
  await shot(page, "06-contact");

  await page.getByRole("link", { name: "Conversations" }).click();
  await page.getByRole("link", { name: bob }).waitFor();
  assert.deepEqual(await axe(page, "conversations"), []);
  await shot(page, "04-conversations");

  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByText("Web browser (this browser)").waitFor(WAIT);
  assert.deepEqual(await axe(page, "settings"), []);
  await shot(page, "08-settings");

  // A reload keeps the session (IndexedDB), and the history.
  await page.goto(`${server.url}/#/c/${encodeURIComponent(bob)}`);
  await page.reload();
  await page.getByRole("log").getByText("Hi Alice, from the terminal").waitFor(WAIT);

  // Older messages are paged in on scroll: 60 from a Node client, then a reload shows the newest
  // 50 of the mailbox, and scrolling to the top of the log brings the first ones.
  const gus = sdkClient(server);
  const gusEmail = email("gus");
  await gus.register(gusEmail, "gus password");
  for (let i = 0; i < 60; i++) await gus.messages.send(alice, `note ${i}`);
  await page.getByRole("link", { name: "Conversations" }).click();
  await page.getByRole("link", { name: gusEmail }).click();
  await page.getByRole("log").getByText("note 59", { exact: true }).waitFor(WAIT);
  await page.reload();
  await page.getByRole("log").getByText("note 59", { exact: true }).waitFor(WAIT);
  assert.equal(await page.getByRole("log").getByText("note 0", { exact: true }).count(), 0);
  await page.getByRole("log").evaluate((el) => (el.scrollTop = 0));
  await page.getByRole("log").getByText("note 0", { exact: true }).waitFor(WAIT);
  gus.close();

  // Bob rotates from the CLI: the warning (words, icon, safety number) blocks sending until accepted.
  await cli(server, "bob", pb, "rotate-keys");
  await page.goto(`${server.url}/#/`);
  await page.getByRole("link", { name: bob }).click();
  const warning = page.locator("#key-warning");
  await warning.waitFor(WAIT);
  assert.match(await warning.textContent(), /Warning: .*security key has changed/);
  assert.equal(await warning.locator(".icon").textContent(), "⚠");
  assert.equal(await warning.getByRole("list", { name: "New safety number" }).getByRole("listitem").count(), 12);
  assert.equal(await page.getByRole("button", { name: "Send" }).isDisabled(), true);
  const posts = () => b.sent.filter((s) => s.method === "POST" && s.url.endsWith("/v1/messages")).length;
  const before = posts();
  secrets.push("this must not go out");
  await page.getByRole("textbox", { name: "Message" }).fill("this must not go out");
  await page.getByRole("textbox", { name: "Message" }).press("Enter");
  assert.deepEqual(await axe(page, "key change warning"), []);
  await shot(page, "07-key-change");
  assert.equal(posts(), before, "nothing is sent while the key change is not accepted");
  await page.getByRole("button", { name: /accept the new key/ }).click();
  await warning.waitFor({ state: "detached", ...WAIT });
  await page.getByRole("textbox", { name: "Message" }).fill("");
  await send(page, "After your new key");
  const after = await inboxOf("bob", pb);
  assert.ok(after.some((m) => m.text === "After your new key"), JSON.stringify(after));
  assert.ok(!after.some((m) => m.text === "this must not go out"));

  // Logout wipes this browser's store.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  const left = await page.evaluate(async () => ({
    dbs: (await indexedDB.databases()).map((d) => d.name).filter((n) => n.startsWith("sealpost")),
    last: localStorage.getItem("sealpost.lastUser"),
  }));
  assert.deepEqual(left, { dbs: [], last: null });
  await page.reload();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();

  assert.deepEqual(b.errors, []);
  checkBodies(b);
});

test("two browsers talk both ways", async () => {
  const carol = email("carol");
  const dave = email("dave");
  secrets.push("carol's password 1", "dave's password 2");
  const [bc, bd] = [await browser(), await browser()];
  const [pc, pd] = [await bc.page(), await bd.page()];
  await register(pc, carol, "carol's password 1");
  await register(pd, dave, "dave's password 2");
  await openConversation(pc, dave);
  await send(pc, "Carol to Dave");
  await pd.getByRole("link", { name: carol }).waitFor(WAIT);
  await pd.getByRole("link", { name: carol }).click();
  await pd.getByRole("log").getByText("Carol to Dave").waitFor(WAIT);
  await send(pd, "Dave to Carol");
  await pc.getByRole("log").getByText("Dave to Carol").waitFor(WAIT);
  for (const b of [bc, bd]) {
    assert.deepEqual(b.errors, []);
    checkBodies(b);
  }
});

test("two tabs of one account refresh at once without losing the session", async () => {
  const short = await startServer({ accessTokenTtl: 4 });
  try {
    const b = await browser();
    const t1 = await b.page();
    const statuses = [];
    b.context.on("response", (r) => {
      if (r.url().endsWith("/v1/auth/refresh")) statuses.push(r.status());
    });
    await register(t1, email("erin"), "erin's password 3", false, short.url);
    secrets.push("erin's password 3");
    const t2 = await b.context.newPage();
    await t2.goto(short.url);
    await t2.getByRole("heading", { name: "Conversations" }).waitFor();
    // Both tabs hold 4-second tokens: wait (90 s at most) for six more refreshes between them.
    const target = statuses.length + 6;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`refreshes: ${statuses}`)), 90000);
      const check = () => {
        if (statuses.length < target) return;
        clearTimeout(timer);
        b.context.off("response", check);
        resolve();
      };
      b.context.on("response", check);
    });
    assert.ok(statuses.every((s) => s === 200), `refresh answers: ${statuses}`);
    for (const t of [t1, t2]) {
      await t.reload();
      await t.getByRole("heading", { name: "Conversations" }).waitFor();
      await t.getByRole("link", { name: "Settings" }).click();
      await t.getByText("Web browser (this browser)").waitFor(WAIT);
    }
    assert.deepEqual(b.errors, []);
    checkBodies(b);
  } finally {
    await short.stop();
  }
});

/** No request body a page sent holds a plaintext or a password. */
function checkBodies(b) {
  assert.ok(b.sent.some((s) => s.body.length > 0), "bodies were captured");
  for (const s of b.sent)
    for (const secret of secrets)
      assert.ok(!s.body.includes(secret), `${s.method} ${s.url} carries "${secret}"`);
}

test("settings: revoke a session, new recovery key, rotate keys, change password, delete the account", async () => {
  const frank = email("frank");
  const [p1, p2] = ["frank's first password", "frank's second password"];
  secrets.push(p1, p2);
  const b = await browser();
  const page = await b.page();
  await register(page, frank, p1);
  const other = sdkClient(server);
  await other.login(frank, p1, { deviceName: "frank's laptop" });
  await page.getByRole("link", { name: "Settings" }).click();
  const form = (name) => page.locator("form", { has: page.getByRole("heading", { name }) });
  const revoke = page.getByRole("button", { name: /^Revoke frank's laptop/ });
  await revoke.click();
  await revoke.waitFor({ state: "detached", ...WAIT });
  await assert.rejects(other.sessions(), (e) => e.code === "signed_out" || e.code === "unauthenticated");

  await form("New recovery key").getByLabel("Password").fill(p1);
  await form("New recovery key").getByRole("button").click();
  await page.getByRole("heading", { name: "Your recovery key" }).waitFor(WAIT);
  await page.getByLabel("I have saved my recovery key somewhere safe").check();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("heading", { name: "Settings" }).waitFor();

  await form("Rotate keys").getByLabel("Password").fill(p1);
  await form("Rotate keys").getByRole("button").click();
  await page.locator("#announcer").getByText("New keys made").waitFor(WAIT);

  await form("Change password").getByLabel("Current password").fill(p1);
  await form("Change password").getByLabel("New password").fill(p2);
  await form("Change password").getByRole("button").click();
  await page.locator("#announcer").getByText("Password changed").waitFor(WAIT);

  // A wrong password is said in an alert, and nothing is deleted.
  const del = form("Delete account");
  await del.getByLabel("Password").fill(p1);
  await del.getByLabel(/I understand/).check();
  await del.getByRole("button").click();
  await del.getByRole("alert").filter({ hasText: /./ }).waitFor(WAIT);
  assert.deepEqual(await axe(page, "settings with an error"), []);
  await del.getByLabel("Password").fill(p2);
  await del.getByRole("button").click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor(WAIT);
  await page.getByLabel("Email").fill(frank);
  await page.getByLabel("Password").fill(p2);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: /./ }).waitFor(WAIT);
  assert.deepEqual(await axe(page, "sign in with an error"), []);
  other.close();
  // The only console lines: Chromium's own network log of the two refusals this test provoked
  // (the wrong password's 403, the deleted account's 401); the page itself logs no error.
  assert.deepEqual(
    b.errors.map((e) => e.replace(/^http:\/\/[^/]+/, "")),
    [
      "/#/settings: Failed to load resource: the server responded with a status of 403 (Forbidden)",
      "/#/login: Failed to load resource: the server responded with a status of 401 (Unauthorized)",
    ],
  );
  checkBodies(b);
});

/** The element that has focus, named as a reader of the page would find it (tag, then its label or text), and whether its focus is drawn (a visible outline or a box-shadow). */
function focusState(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { name: "(nothing)", drawn: false };
    const label = el.getAttribute("aria-label") ?? (el.labels?.length ? el.labels[0].textContent : el.textContent);
    const s = getComputedStyle(el);
    const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0;
    return { name: `${el.tagName.toLowerCase()} ${label.trim()}`, drawn: outline || s.boxShadow !== "none" };
  });
}

/** Presses `key` and checks that focus went to `want` (a name as focusState gives it, or a pattern) and is drawn. */
async function press(page, key, want) {
  await page.keyboard.press(key);
  const got = await focusState(page);
  if (want instanceof RegExp) assert.match(got.name, want, `after ${key}`);
  else assert.equal(got.name, want, `after ${key}`);
  assert.ok(got.drawn, `the focus on "${got.name}" is visible`);
}

test("keyboard only: register, open a conversation, send, the contact view, settings (revoke a session), with visible focus in order", async () => {
  const kim = email("kim");
  const lee = email("lee");
  const pk = "kim's keyboard password";
  const text = "Typed and sent without a mouse";
  secrets.push(pk, text);
  const leeClient = sdkClient(server);
  await leeClient.register(lee, "lee's password 7");
  const b = await browser();
  const page = await b.page();
  const key = (k, want) => press(page, k, want);
  await page.goto(server.url);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();

  // Sign in's form, then its two links, and back; Enter follows "Create one".
  await key("Tab", "input Email");
  await key("Tab", "input Password");
  await key("Tab", "button Sign in");
  await key("Tab", "a Create one");
  await key("Tab", "a Use your recovery key");
  await key("Shift+Tab", "a Create one");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Create an account" }).waitFor();

  await key("Tab", "input Email");
  await page.keyboard.type(kim);
  await key("Tab", "input Password (at least 10 characters)");
  await page.keyboard.type(pk);
  await key("Shift+Tab", "input Email");
  await key("Tab", "input Password (at least 10 characters)");
  await key("Tab", "button Create account");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Your recovery key" }).waitFor(WAIT);

  // The confirmation is a checkbox: Space ticks it, which enables Continue.
  await key("Tab", "input I have saved my recovery key somewhere safe");
  await page.keyboard.press("Space");
  assert.equal(await page.getByLabel("I have saved my recovery key somewhere safe").isChecked(), true);
  await key("Tab", "button Continue");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Conversations" }).waitFor(WAIT);
  // Another session of Kim's, which settings will revoke from the keyboard (Space on its button).
  const phone = sdkClient(server);
  await phone.login(kim, pk, { deviceName: "kim's phone" });

  await key("Tab", "input Start a conversation with (email)");
  await page.keyboard.type(lee);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: lee }).waitFor(WAIT);

  // Backwards through the navigation to "Skip to content", which brings focus back to this screen.
  await key("Shift+Tab", "button Log out");
  await key("Shift+Tab", "a Settings");
  await key("Shift+Tab", "a Conversations");
  await key("Shift+Tab", "a Skip to content");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
  assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), lee, "the skip link does not change the screen");

  await key("Tab", `a Safety number and contact details of ${lee}`);
  await key("Tab", `div Messages with ${lee}`);
  await key("Tab", "textarea Message");
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
  await page.getByRole("log").getByText(text).waitFor(WAIT);
  assert.deepEqual(await focusState(page), { name: "textarea Message", drawn: true }, "focus stays in the message box");
  await shot(page, "10-keyboard-focus");
  const got = await leeClient.messages.list();
  assert.ok(got.messages.some((r) => r.ok && r.message.text === text && r.message.fromEmail === kim));
  await key("Tab", "button Send");
  await key("Shift+Tab", "textarea Message");
  await key("Shift+Tab", `div Messages with ${lee}`);
  await key("Shift+Tab", `a Safety number and contact details of ${lee}`);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: `Contact: ${lee}` }).waitFor(WAIT);
  await page.getByRole("list", { name: "Safety number" }).waitFor(WAIT);

  await key("Tab", "a Back to the conversation");
  await key("Shift+Tab", "button Log out");
  await key("Shift+Tab", "a Settings");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Settings" }).waitFor(WAIT);

  const revoke = page.getByRole("button", { name: /^Revoke kim's phone/ });
  await revoke.waitFor(WAIT);
  await key("Tab", "input Current password");
  await key("Tab", "input New password");
  await key("Tab", "button Change password");
  await key("Tab", "input Password");
  await key("Tab", "button Make a new recovery key");
  await key("Tab", "input Password");
  await key("Tab", "button Rotate my keys");
  await key("Tab", /^button Revoke kim's phone last used /);
  await page.keyboard.press("Space");
  await revoke.waitFor({ state: "detached", ...WAIT });
  await page.locator("#announcer").getByText("Session revoked.").waitFor(WAIT);
  // The list is drawn again without the button: focus goes to the section's heading, not to nowhere.
  await page.waitForFunction(() => document.activeElement !== document.body && document.activeElement !== null, null, WAIT);
  assert.deepEqual(await focusState(page), { name: "h2 Sessions", drawn: true }, "focus stays in the sessions section");
  await assert.rejects(phone.sessions(), (e) => e.code === "signed_out" || e.code === "unauthenticated");
  phone.close();
  leeClient.close();
  assert.deepEqual(b.errors, []);
  checkBodies(b);
});

test("a message that failed with key_changed opens once the change is accepted, without a reload", async () => {
  const alice = email("alice");
  const bob = email("bob");
  const [pa, pb] = ["alice's password 8", "bob's cli password 8"];
  const rotated = "Sealed with my second key";
  secrets.push(pa, rotated);
  await cli(server, "bob-rotated", pb, "register", bob);
  const b = await browser();
  const page = await b.page();
  await register(page, alice, pa);
  await openConversation(page, bob);
  await send(page, "Before your rotation");

  await cli(server, "bob-rotated", pb, "rotate-keys");
  await cli(server, "bob-rotated", pb, "send", alice, rotated);
  const log = page.getByRole("log");
  await log.getByText("This message cannot be shown (key_changed).").waitFor(WAIT);
  const warning = page.locator("#key-warning");
  await warning.waitFor(WAIT);
  assert.match(await warning.textContent(), /Warning: .*security key has changed/);
  assert.equal(await log.getByText(rotated).count(), 0, "nothing from an unaccepted key is shown");
  assert.equal(await page.getByRole("button", { name: "Send" }).isDisabled(), true);

  await page.getByRole("button", { name: "I have checked: accept the new key" }).click();
  await warning.waitFor({ state: "detached", ...WAIT });
  await log.getByText(rotated).waitFor(WAIT);
  assert.equal(await log.getByText(/cannot be shown/).count(), 0);
  assert.equal(await page.evaluate(() => document.activeElement?.id), "compose", "focus moves to the message box");
  await page.getByRole("link", { name: "Conversations" }).click();
  await page.getByRole("listitem").filter({ hasText: bob }).getByText(`— ${rotated}`).waitFor(WAIT);
  assert.deepEqual(b.errors, []);
  checkBodies(b);
});

test("a contact change: the email registered again by another account warns with words and an icon, and blocks sending until accepted", async () => {
  const alice = email("alice");
  const bob = email("bob");
  const [pa, p1, p2] = ["alice's password 9", "first bob's password", "second bob's password"];
  secrets.push(pa, "From the second account", "Again from the second account", "Hello, second account");
  await cli(server, "bob-first", p1, "register", bob);
  const b = await browser();
  const page = await b.page();
  await register(page, alice, pa);
  await openConversation(page, bob);
  await send(page, "To the first Bob");
  await cli(server, "bob-first", p1, "send", alice, "From the first Bob");
  const log = page.getByRole("log");
  await log.getByText("From the first Bob").waitFor(WAIT);

  // Bob deletes his account; another account registers the same email and writes to Alice.
  await cli(server, "bob-first", p1, "delete-account", "--yes");
  await cli(server, "bob-second", p2, "register", bob);
  await cli(server, "bob-second", p2, "send", alice, "From the second account");
  // Its message is listed apart, as an unverified sender that claims Bob's email, never under it.
  await page.getByRole("link", { name: "Conversations" }).click();
  const stranger = page.getByRole("listitem").filter({ hasText: "— From the second account" });
  await stranger.waitFor(WAIT);
  assert.notEqual(await stranger.getByRole("link").textContent(), bob);
  await stranger.getByRole("link").click();
  const theirs = page.locator(".msg", { hasText: "From the second account" }).locator(".meta");
  await theirs.waitFor(WAIT);
  assert.match(await theirs.textContent(), new RegExp(`^Unverified sender \\(claims to be ${literal(bob)}; not your contact\\)`));

  await page.getByRole("link", { name: "Conversations" }).click();
  await page.getByRole("link", { name: bob, exact: true }).click();
  const warning = page.locator("#key-warning");
  await warning.waitFor(WAIT);
  assert.match(await warning.textContent(), new RegExp(`Warning: The account behind ${literal(bob)} is not the one you talked to before`));
  assert.match(await warning.textContent(), /deleted their account and registered the address again/);
  assert.equal(await warning.locator(".icon").textContent(), "⚠");
  assert.equal(await warning.locator(".icon").getAttribute("aria-hidden"), "true");
  assert.equal(await warning.getByRole("list", { name: "New safety number" }).getByRole("listitem").count(), 12);
  // A new message from it redraws the conversation, and still nothing of it is shown under the email.
  await cli(server, "bob-second", p2, "send", alice, "Again from the second account");
  await page.locator("#announcer").getByText("New message from unknown sender").waitFor(WAIT);
  assert.equal(await log.getByText(/from the second account/i).count(), 0, "nothing from the new account under the email");
  const compose = page.getByRole("textbox", { name: "Message" });
  assert.equal(await page.getByRole("button", { name: "Send" }).isDisabled(), true);
  const posts = () => b.sent.filter((s) => s.method === "POST" && s.url.endsWith("/v1/messages")).length;
  const before = posts();
  secrets.push("not to a stranger");
  await compose.fill("not to a stranger");
  await compose.press("Enter");
  assert.deepEqual(await axe(page, "contact change warning"), []);
  await shot(page, "09-contact-change");
  assert.equal(posts(), before, "nothing is sent while the contact change is not accepted");

  await page.getByRole("button", { name: "I have checked: accept the new account" }).click();
  await warning.waitFor({ state: "detached", ...WAIT });
  // The new account's message is now Bob's, and the old account's no longer is.
  const first = page.locator(".msg", { has: page.getByText("From the second account", { exact: true }) });
  await first.locator(".meta", { hasText: new RegExp(`^${literal(bob)}, `) }).waitFor(WAIT);
  await log.getByText("Again from the second account").waitFor(WAIT);
  assert.equal(await log.getByText("From the first Bob").count(), 0);
  await compose.fill("");
  await send(page, "Hello, second account");
  const inbox = await inboxOf("bob-second", p2);
  assert.ok(inbox.some((m) => m.text === "Hello, second account" && m.from === alice), JSON.stringify(inbox));
  assert.ok(!inbox.some((m) => m.text === "not to a stranger"));
  assert.deepEqual(b.errors, []);
  checkBodies(b);
});

test("account recovery in the browser: a typo is said before any request, the recovery key sets a new password, the mailbox is kept", async () => {
  const ann = email("ann");
  const pal = email("pal");
  const [old, next] = ["ann's forgotten password", "ann's new password 10"];
  secrets.push(old, next, "Kept across the recovery");
  const b = await browser();
  const page = await b.page();
  const recoveryKey = await register(page, ann, old);
  secrets.push(recoveryKey, recoveryKey.replace(/-/g, ""));
  const palClient = sdkClient(server);
  await palClient.register(pal, "pal's password 10");
  await palClient.messages.send(ann, "Kept across the recovery");
  const laptop = sdkClient(server);
  await laptop.login(ann, old, { deviceName: "ann's laptop" });

  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByRole("link", { name: "Use your recovery key" }).click();
  await page.getByRole("heading", { name: "Recover your account" }).waitFor();
  assert.deepEqual(await axe(page, "recover"), []);
  await shot(page, "11-recover");

  // One symbol changed: the key's own check says so, and nothing is asked of the server.
  const groups = recoveryKey.split("-");
  groups[1] = (groups[1][0] === "0" ? "1" : "0") + groups[1].slice(1);
  await page.getByLabel("Email").fill(ann);
  await page.getByLabel(/^Recovery key/).fill(groups.join("-"));
  await page.getByLabel(/^New password/).fill(next);
  await page.getByRole("button", { name: "Set the new password and sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "That recovery key has a typo" }).waitFor(WAIT);
  assert.equal(b.sent.filter((s) => s.url.endsWith("/v1/auth/recover")).length, 0);
  assert.deepEqual(await axe(page, "recover with an error"), []);

  // The right key, written in lower case with spaces: a new password, signed in, the mailbox there.
  await page.getByLabel(/^Recovery key/).fill(recoveryKey.toLowerCase().replace(/-/g, " "));
  await page.getByRole("button", { name: "Set the new password and sign in" }).click();
  await page.getByRole("heading", { name: "Conversations" }).waitFor(WAIT);
  await page.locator("#announcer").getByText(/New password set/).waitFor(WAIT);
  await page.getByRole("link", { name: pal }).click();
  await page.getByRole("log").getByText("Kept across the recovery").waitFor(WAIT);

  // Every other session was signed out; the new password signs in, the old one no longer does.
  await assert.rejects(laptop.sessions(), (e) => e.code === "signed_out" || e.code === "unauthenticated");
  await assert.rejects(sdkClient(server).login(ann, old), (e) => e.code === "wrong_password");
  const again = sdkClient(server);
  await again.login(ann, next);
  again.close();
  laptop.close();
  palClient.close();
  assert.deepEqual(b.errors, []);
  checkBodies(b);
});
