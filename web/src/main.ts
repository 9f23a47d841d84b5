// Sealpost's reference browser client: every key is made and every message sealed and opened here,
// by @sealpost/sdk; the server (the page's own origin) stores ciphertext only.
import {
  createClient,
  formatSafetyNumber,
  indexedDBStore,
  isSealpostError,
  type Account,
  type Client,
  type Message,
  type Received,
  type TrustDetails,
} from "@sealpost/sdk";

/** The user id of the account this browser last signed in to: not a secret, only which record to resume. */
const LAST = "sealpost.lastUser";
/** `before` above every `seq`: the newest page. */
const NEWEST = Number.MAX_SAFE_INTEGER;

let client: Client = newClient();
let me: { userId: string; email: string } | undefined;
let stop: AbortController | undefined;
/** Every message this page has opened, by entry id, and the oldest `seq` paged in. */
const entries = new Map<string, Received>();
let oldest = NEWEST;
let noOlder = false;
/** Contacts whose key or account changed and is not accepted yet: what the warning shows. */
const changed = new Map<string, { code: string; trust: TrustDetails | undefined }>();
/** Redraws the open screen when something arrives. */
let refresh: (() => void) | undefined;

const main = document.getElementById("main")!;
const nav = document.getElementById("nav")!;
const announcer = document.getElementById("announcer")!;

// "Skip to content" moves focus only: following its #main would be taken for a route.
document.querySelector(".skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});

function newClient(): Client {
  const c = createClient({ server: location.origin, store: indexedDBStore() });
  // Another tab logged out, or the session was revoked: this page forgets it too.
  c.on("signedOut", () => {
    localStorage.removeItem(LAST);
    forgetSession();
  });
  return c;
}

type Child = Node | string | false | undefined | null;

/** A small element builder: `h("button", { type: "submit" }, "Send")`. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== false && c !== undefined && c !== null) el.append(c);
  return el;
}

let ids = 0;
/** A labelled input. */
function field(label: string, type: string, name: string, extra: Record<string, string | boolean> = {}) {
  const id = `f${++ids}`;
  const input = h("input", { id, type, name, required: true, ...extra });
  return { input, nodes: [h("label", { for: id }, label), input] };
}

function alertBox(): HTMLElement {
  return h("p", { class: "error", role: "alert" });
}

function say(el: HTMLElement, e: unknown) {
  el.textContent = isSealpostError(e) ? e.message : e instanceof Error ? e.message : String(e);
}

function announce(text: string) {
  announcer.textContent = "";
  // A new node each time, so that a repeated text is announced again.
  announcer.append(h("span", {}, text));
}

/** Runs `work` with the form's submit button disabled, and shows a failure in `err`. */
function busy(form: HTMLFormElement, err: HTMLElement, work: () => Promise<void>) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector<HTMLButtonElement>("button[type=submit]");
    err.textContent = "";
    if (button) button.disabled = true;
    try {
      await work();
    } catch (e) {
      say(err, e);
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  });
}

function screen(title: string, ...children: Child[]) {
  refresh = undefined;
  document.title = `${title} · Sealpost`;
  main.replaceChildren(h("h1", {}, title), ...children.filter((c): c is Node | string => !!c));
  drawNav();
  main.focus();
}

function drawNav() {
  const link = (href: string, text: string) => h("li", {}, h("a", { href }, text));
  nav.replaceChildren(
    me
      ? h(
          "ul",
          {},
          link("#/", "Conversations"),
          link("#/settings", "Settings"),
          h("li", {}, h("button", { class: "link", type: "button", onclick: () => void logout() }, "Log out")),
        )
      : h("ul", {}, link("#/login", "Sign in"), link("#/register", "Register")),
  );
}

// ---- session ----

async function signedIn(account: { userId: string; email: string }) {
  me = account;
  localStorage.setItem(LAST, account.userId);
  entries.clear();
  changed.clear();
  oldest = NEWEST;
  noOlder = false;
  await loadOlder();
  startStream();
}

function startStream() {
  stop?.abort();
  const ctl = new AbortController();
  stop = ctl;
  const after = Math.max(0, ...[...entries.values()].map((r) => r.entry.seq));
  void (async () => {
    try {
      for await (const r of client.messages.stream({ after, signal: ctl.signal })) {
        if (entries.has(r.entry.id)) continue;
        entries.set(r.entry.id, r);
        noteFailure(r);
        if (r.ok && !r.message.outgoing) announce(`New message from ${r.message.fromEmail ?? "unknown sender"}`);
        refresh?.();
      }
    } catch (e) {
      if (!ctl.signal.aborted && isSealpostError(e) && e.code === "signed_out") forgetSession();
    }
  })();
}

/** Pages in the next older page of the mailbox; answers whether it found any. */
async function loadOlder(): Promise<boolean> {
  if (noOlder) return false;
  const page = await client.messages.list({ before: oldest, limit: 50 });
  for (const r of page.messages) {
    entries.set(r.entry.id, r);
    noteFailure(r);
    oldest = Math.min(oldest, r.entry.seq);
  }
  if (page.messages.length < 50) noOlder = true;
  return page.messages.length > 0;
}

function noteFailure(r: Received) {
  if (!r.ok && (r.error.code === "key_changed" || r.error.code === "contact_changed"))
    changed.set(r.entry.from, { code: r.error.code, trust: r.error.trust });
}

/**
 * Opens again every loaded entry to or from `ids` once the user has accepted a key or contact
 * change: a message that failed with key_changed opens now, and names follow the new pins (after a
 * contact change the old account is no longer shown under the email). Pages forward from the
 * oldest such entry to the newest.
 */
async function reopen(ids: Set<string>) {
  const stale = [...entries.values()].filter((r) => ids.has(r.entry.from) || ids.has(r.entry.to));
  if (stale.length === 0) return;
  const wanted = new Set(stale.map((r) => r.entry.id));
  const last = Math.max(...stale.map((r) => r.entry.seq));
  let after = Math.min(...stale.map((r) => r.entry.seq)) - 1;
  while (after < last) {
    const page = await client.messages.list({ after, limit: 200 });
    for (const r of page.messages) {
      if (!wanted.has(r.entry.id)) continue;
      entries.set(r.entry.id, r);
      noteFailure(r);
    }
    if (page.messages.length === 0) break;
    after = page.next;
  }
}

function forgetSession() {
  stop?.abort();
  me = undefined;
  entries.clear();
  changed.clear();
  location.hash = "#/login";
}

async function logout() {
  stop?.abort();
  try {
    await client.logout();
  } finally {
    localStorage.removeItem(LAST);
    client.close();
    client = newClient();
    forgetSession();
    announce("Signed out; this browser's copy of your keys is deleted.");
  }
}

// ---- screens ----

function registerScreen() {
  const err = alertBox();
  const email = field("Email", "email", "email", { autocomplete: "username" });
  const pw = field("Password (at least 10 characters)", "password", "password", {
    autocomplete: "new-password",
    minlength: "10",
  });
  const form = h("form", {}, ...email.nodes, ...pw.nodes, h("button", { type: "submit" }, "Create account"), err);
  busy(form, err, async () => {
    const { recoveryKey } = await client.register(email.input.value, pw.input.value, {
      deviceName: "Web browser",
    });
    pw.input.value = "";
    const account = client.account()!;
    recoveryScreen(recoveryKey, async () => {
      await signedIn({ userId: account.userId, email: account.email });
      location.hash = "#/";
    });
  });
  screen(
    "Create an account",
    h("p", {}, "Your keys are made in this browser. The server never sees your password or your messages."),
    form,
  );
}

/** Shows a recovery key once; Continue stays disabled until the user says it is saved. */
function recoveryScreen(key: string | undefined, next: () => Promise<void>) {
  const err = alertBox();
  const check = h("input", { id: "saved", type: "checkbox", name: "saved" });
  const go = h("button", { type: "submit", disabled: true }, "Continue");
  check.addEventListener("change", () => (go.disabled = !check.checked));
  const form = h(
    "form",
    {},
    h("label", { class: "check", for: "saved" }, check, "I have saved my recovery key somewhere safe"),
    go,
    err,
  );
  busy(form, err, async () => {
    if (!check.checked) throw new Error("Confirm that you have saved the recovery key first.");
    await next();
  });
  screen(
    "Your recovery key",
    h(
      "p",
      {},
      "This is the only way back into your messages if you forget your password. It is shown once, now: write it down or store it in a password manager.",
    ),
    h("p", { class: "key", id: "recovery-key" }, key ?? "(none)"),
    form,
  );
}

function loginScreen() {
  const err = alertBox();
  const email = field("Email", "email", "email", { autocomplete: "username" });
  const pw = field("Password", "password", "password", { autocomplete: "current-password" });
  const form = h("form", {}, ...email.nodes, ...pw.nodes, h("button", { type: "submit" }, "Sign in"), err);
  busy(form, err, async () => {
    const a = await client.login(email.input.value, pw.input.value, { deviceName: "Web browser" });
    pw.input.value = "";
    await signedIn({ userId: a.userId, email: a.email });
    location.hash = "#/";
  });
  screen(
    "Sign in",
    form,
    h("p", {}, "No account yet? ", h("a", { href: "#/register" }, "Create one")),
    h("p", {}, "Forgot your password? ", h("a", { href: "#/recover" }, "Use your recovery key")),
  );
}

/** A new password with the recovery key (the SDK checks the key's typo check before asking the server), then signed in. */
function recoverScreen() {
  const err = alertBox();
  const email = field("Email", "email", "email", { autocomplete: "username" });
  const key = field("Recovery key (14 groups of 4 letters or digits)", "text", "recovery-key", {
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
  });
  const pw = field("New password (at least 10 characters)", "password", "password", {
    autocomplete: "new-password",
    minlength: "10",
  });
  const form = h(
    "form",
    {},
    ...email.nodes,
    ...key.nodes,
    ...pw.nodes,
    h("button", { type: "submit" }, "Set the new password and sign in"),
    err,
  );
  busy(form, err, async () => {
    let a: Account;
    try {
      a = await client.recover(email.input.value, key.input.value, pw.input.value, { deviceName: "Web browser" });
    } catch (e) {
      if (isSealpostError(e, "recovery_key_typo"))
        throw new Error("That recovery key has a typo: check each group of four (case, spaces and dashes do not matter).");
      if (isSealpostError(e, "unauthenticated")) throw new Error("Wrong email or recovery key.");
      throw e;
    }
    key.input.value = "";
    pw.input.value = "";
    await signedIn({ userId: a.userId, email: a.email });
    location.hash = "#/";
    announce("New password set; every other session is signed out. The recovery key still works: make a new one in Settings to replace it.");
  });
  screen(
    "Recover your account",
    h(
      "p",
      {},
      "Forgot your password? The recovery key you saved when you registered sets a new one, here in your browser. Every other session of the account is signed out.",
    ),
    form,
    h("p", {}, h("a", { href: "#/login" }, "Back to sign in")),
  );
}

/** The peer of a message: who it was from, or for an outgoing copy who it went to. */
function peerOf(r: Received): { id: string; email: string } {
  if (r.ok) {
    return r.message.outgoing
      ? { id: r.message.to, email: r.message.toEmail ?? r.message.to }
      : { id: r.message.from, email: r.message.fromEmail ?? r.message.from };
  }
  return r.entry.from === me?.userId
    ? { id: r.entry.to, email: r.entry.to }
    : { id: r.entry.from, email: r.entry.fromEmail ?? r.entry.from };
}

function conversationsScreen() {
  const list = h("ul", { class: "conversations" });
  const draw = () => {
    const peers = new Map<string, { email: string; last: Received }>();
    for (const r of [...entries.values()].sort((a, b) => a.entry.seq - b.entry.seq)) {
      const p = peerOf(r);
      peers.set(p.id, { email: p.email, last: r });
    }
    list.replaceChildren(
      ...[...peers.values()]
        .sort((a, b) => b.last.entry.seq - a.last.entry.seq)
        .map((p) =>
          h(
            "li",
            {},
            h("a", { href: `#/c/${encodeURIComponent(p.email)}` }, p.email),
            " ",
            h("span", {}, p.last.ok ? `— ${p.last.message.text.slice(0, 60)}` : "— a message that cannot be shown"),
          ),
        ),
    );
    if (peers.size === 0) list.replaceChildren(h("li", {}, "No conversations yet."));
  };
  const err = alertBox();
  const to = field("Start a conversation with (email)", "email", "to");
  const form = h("form", {}, ...to.nodes, h("button", { type: "submit" }, "Open"), err);
  busy(form, err, async () => {
    const c = await client.contacts.lookup(to.input.value).catch((e) => {
      if (isSealpostError(e) && (e.code === "key_changed" || e.code === "contact_changed")) return undefined;
      throw e;
    });
    location.hash = `#/c/${encodeURIComponent(c?.email ?? to.input.value.trim().toLowerCase())}`;
  });
  screen("Conversations", h("p", {}, `Signed in as ${me?.email}`), form, h("h2", {}, "Recent"), list);
  draw();
  refresh = draw;
}

function safetyGroups(number: string, label: string): HTMLElement {
  const groups = formatSafetyNumber(number).split(" ");
  return h(
    "ol",
    { class: "safety", "aria-label": label },
    ...groups.map((g, i) => h("li", { "aria-label": `group ${i + 1} of ${groups.length}: ${g.split("").join(" ")}` }, g)),
  );
}

/** The key-change / contact-change warning: words and an icon, and the new safety number. */
function warningBox(email: string, info: { code: string; trust: TrustDetails | undefined }, accepted: () => void) {
  const err = alertBox();
  const account = info.code === "contact_changed";
  const accept = h("button", { type: "button" }, `I have checked: accept the new ${account ? "account" : "key"}`);
  accept.addEventListener("click", async () => {
    err.textContent = "";
    accept.disabled = true;
    try {
      await client.contacts.trust(email);
    } catch (e) {
      say(err, e);
      accept.disabled = false;
      return;
    }
    for (const [k, v] of changed) if (k === info.trust?.userId || v === info) changed.delete(k);
    const ids = new Set([info.trust?.userId, info.trust?.pinnedUserId].filter((id): id is string => !!id));
    // What this page could not open, or showed under the old pins, is opened again now, not at the next reload.
    let note = "";
    await reopen(ids).catch(() => (note = " Some messages could not be opened again: reload the page to retry."));
    announce(`The new ${account ? "account" : "key"} of ${email} is accepted.${note}`);
    accepted();
    refresh?.();
  });
  const what = account
    ? `The account behind ${email} is not the one you talked to before.`
    : `${email}'s security key has changed.`;
  return h(
    "div",
    { class: "warning", role: "alert", id: "key-warning" },
    h("h2", {}, h("span", { class: "icon", "aria-hidden": "true" }, "⚠"), "Warning: ", what),
    h(
      "p",
      {},
      `${
        account
          ? "This happens when they deleted their account and registered the address again"
          : "This happens when they reinstall or rotate their keys"
      }, but it could also mean someone is intercepting. Compare the new safety number with them in person or on a call before you accept. Sending is blocked until you do.`,
    ),
    info.trust?.safetyNumber ? safetyGroups(info.trust.safetyNumber, "New safety number") : h("p", {}, "No safety number was offered."),
    accept,
    err,
  );
}

/** Who sent a message, as the pins say: an account not pinned to the email it claims is never shown under it. */
function senderName(m: Message): string {
  if (m.fromEmail) return m.fromEmail;
  return m.fromClaimedEmail
    ? `Unverified sender (claims to be ${m.fromClaimedEmail}; not your contact)`
    : "Unverified sender";
}

function conversationScreen(email: string) {
  const log = h("div", {
    class: "log",
    role: "log",
    "aria-live": "off",
    "aria-label": `Messages with ${email}`,
    tabindex: "0",
  });
  const status = h("p", { class: "sr-only", id: "paging" });
  const warn = h("div");
  const err = alertBox();
  const textId = "compose";
  const text = h("textarea", { id: textId, name: "text", rows: "2", required: true });
  const send = h("button", { type: "submit" }, "Send");
  const form = h(
    "form",
    { class: "composer" },
    h("div", {}, h("label", { for: textId }, "Message"), text),
    send,
  );
  let peerId: string | undefined;
  let blocked = false;

  const block = (info: { code: string; trust: TrustDetails | undefined } | undefined) => {
    blocked = !!info;
    send.disabled = blocked;
    text.setAttribute("aria-describedby", blocked ? "key-warning" : "");
    warn.replaceChildren(
      info
        ? warningBox(email, info, () => {
            block(undefined);
            // The button that had focus is gone: the message box is where the user goes next.
            text.focus();
          })
        : "",
    );
  };

  const draw = () => {
    const mine = [...entries.values()]
      .filter((r) => {
        const p = peerOf(r);
        // An account this email may have moved to shows here only once that move is accepted (§6).
        return p.email === email || (p.id === peerId && !changed.has(p.id));
      })
      .sort((a, b) => a.entry.seq - b.entry.seq);
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const before = log.scrollHeight;
    const wasTop = log.scrollTop;
    log.replaceChildren(
      ...mine.map((r) =>
        r.ok
          ? h(
              "div",
              { class: r.message.outgoing ? "msg out" : "msg" },
              h("span", { class: "meta" }, `${r.message.outgoing ? "You" : senderName(r.message)}, ${r.message.sentAt.toLocaleString()}`),
              h("span", { class: "text" }, r.message.text),
            )
          : h("div", { class: "msg bad" }, h("span", { class: "meta" }, `Message #${r.entry.seq}`), `This message cannot be shown (${r.error.code}).`),
      ),
    );
    if (mine.length === 0) log.append(h("p", {}, "No messages yet."));
    if (atBottom) log.scrollTop = log.scrollHeight;
    else log.scrollTop = wasTop + (log.scrollHeight - before);
    const pending = peerId ? changed.get(peerId) : undefined;
    if (pending && !blocked) block(pending);
  };

  let paging = false;
  log.addEventListener("scroll", async () => {
    if (log.scrollTop > 20 || paging || noOlder) return;
    paging = true;
    status.textContent = "Loading older messages…";
    try {
      const more = await loadOlder();
      status.textContent = more ? "Older messages loaded." : "No older messages.";
      draw();
    } catch (e) {
      say(err, e);
    } finally {
      paging = false;
    }
  });

  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (blocked || !text.value.trim()) return;
    err.textContent = "";
    send.disabled = true;
    try {
      await client.messages.send(email, text.value);
      text.value = "";
      announce("Message sent.");
    } catch (e) {
      if (isSealpostError(e) && (e.code === "key_changed" || e.code === "contact_changed")) {
        const info = { code: e.code, trust: e.trust };
        if (e.trust?.userId) changed.set(e.trust.userId, info);
        block(info);
        return;
      }
      say(err, e);
    } finally {
      send.disabled = blocked;
    }
  });

  screen(
    email,
    h("p", {}, h("a", { href: `#/contact/${encodeURIComponent(email)}` }, `Safety number and contact details of ${email}`)),
    warn,
    log,
    status,
    form,
    err,
  );
  draw();
  refresh = draw;
  log.scrollTop = log.scrollHeight;
  // Checks the contact against the pins as soon as the conversation opens, so a change shows before typing.
  client.contacts
    .lookup(email)
    .then((c) => {
      peerId = c.userId;
      draw();
    })
    .catch((e) => {
      if (isSealpostError(e) && (e.code === "key_changed" || e.code === "contact_changed")) {
        const info = { code: e.code, trust: e.trust };
        if (e.trust?.userId) peerId = e.trust.userId;
        if (peerId) changed.set(peerId, info);
        block(info);
      } else say(err, e);
    });
}

async function contactScreen(email: string) {
  const err = alertBox();
  const body = h("div", {}, h("p", {}, "Loading…"));
  screen(`Contact: ${email}`, body, err, h("p", {}, h("a", { href: `#/c/${encodeURIComponent(email)}` }, "Back to the conversation")));
  try {
    const n = await client.contacts.safetyNumber(email);
    const parts: Child[] = [
      h(
        "p",
        {},
        "Compare this number with the one your contact sees for you, in person or on a call. If they match, nobody is in the middle.",
      ),
    ];
    if (n.pinned) {
      parts.push(h("h2", {}, `Safety number (their key version ${n.pinned.version})`), safetyGroups(n.pinned.safetyNumber, "Safety number"));
    }
    if (n.pending) {
      parts.push(
        warningBox(
          email,
          {
            code: n.pendingUserId ? "contact_changed" : "key_changed",
            trust: {
              userId: n.pendingUserId ?? n.userId,
              pinnedUserId: n.pendingUserId ? n.userId : undefined,
              safetyNumber: n.pending.safetyNumber,
            },
          },
          () => void contactScreen(email),
        ),
      );
    }
    body.replaceChildren(...parts.filter((c): c is Node => !!c));
  } catch (e) {
    body.replaceChildren();
    say(err, e);
  }
}

function passwordForm(opts: {
  legend: string;
  button: string;
  fields: { label: string; name: string; autocomplete: string }[];
  extra?: Child[];
  danger?: boolean;
  run: (values: string[]) => Promise<void>;
}) {
  const err = alertBox();
  const fs = opts.fields.map((f) => field(f.label, "password", f.name, { autocomplete: f.autocomplete }));
  const form = h(
    "form",
    {},
    h("h2", {}, opts.legend),
    ...fs.flatMap((f) => f.nodes),
    ...(opts.extra ?? []),
    h("button", { type: "submit", class: opts.danger ? "danger" : "" }, opts.button),
    err,
  );
  busy(form, err, async () => {
    await opts.run(fs.map((f) => f.input.value));
    for (const f of fs) f.input.value = "";
  });
  return h("section", {}, form);
}

function settingsScreen() {
  const sessions = h("tbody");
  const sessErr = alertBox();
  const sessionsTitle = h("h2", { tabindex: "-1" }, "Sessions");
  const loadSessions = async () => {
    try {
      const list = await client.sessions();
      sessions.replaceChildren(
        ...list.map((s) =>
          h(
            "tr",
            {},
            h("td", {}, `${s.deviceName ?? "Unnamed device"}${s.current ? " (this browser)" : ""}`),
            h("td", {}, s.lastUsedAt.toLocaleString()),
            h(
              "td",
              {},
              s.current
                ? ""
                : h(
                    "button",
                    {
                      type: "button",
                      "aria-label": `Revoke ${s.deviceName ?? "unnamed device"} last used ${s.lastUsedAt.toLocaleString()}`,
                      onclick: async () => {
                        try {
                          await client.revokeSession(s.id);
                          announce("Session revoked.");
                          await loadSessions();
                          // The button left with its row: keep keyboard focus in the same place.
                          sessionsTitle.focus();
                        } catch (e) {
                          say(sessErr, e);
                        }
                      },
                    },
                    "Revoke",
                  ),
            ),
          ),
        ),
      );
    } catch (e) {
      say(sessErr, e);
    }
  };
  const done = (text: string) => announce(text);
  const confirmId = "confirm-delete";
  const confirm = h("input", { id: confirmId, type: "checkbox", name: "confirm" });
  screen(
    "Settings",
    h("p", {}, `Signed in as ${me?.email}`),
    passwordForm({
      legend: "Change password",
      button: "Change password",
      fields: [
        { label: "Current password", name: "current", autocomplete: "current-password" },
        { label: "New password", name: "next", autocomplete: "new-password" },
      ],
      run: async ([cur, next]) => {
        await client.changePassword(cur!, next!);
        done("Password changed; your other sessions are signed out.");
      },
    }),
    passwordForm({
      legend: "New recovery key",
      button: "Make a new recovery key",
      fields: [{ label: "Password", name: "password", autocomplete: "current-password" }],
      run: async ([pw]) => {
        const key = await client.newRecoveryKey(pw!);
        recoveryScreen(key, async () => {
          location.hash = "#/settings";
          settingsScreen();
        });
      },
    }),
    passwordForm({
      legend: "Rotate keys",
      button: "Rotate my keys",
      fields: [{ label: "Password", name: "password", autocomplete: "current-password" }],
      run: async ([pw]) => {
        await client.rotateKeys(pw!);
        done("New keys made; your contacts will see a key change.");
      },
    }),
    h(
      "section",
      {},
      sessionsTitle,
      h(
        "table",
        { class: "sessions" },
        h("caption", { class: "sr-only" }, "Devices signed in to this account"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Device"), h("th", { scope: "col" }, "Last used"), h("th", { scope: "col" }, "Action"))),
        sessions,
      ),
      sessErr,
    ),
    passwordForm({
      legend: "Delete account",
      button: "Delete my account",
      danger: true,
      fields: [{ label: "Password", name: "password", autocomplete: "current-password" }],
      extra: [h("label", { class: "check", for: confirmId }, confirm, "I understand that my account and messages are deleted for good")],
      run: async ([pw]) => {
        if (!confirm.checked) throw new Error("Tick the box to confirm the deletion.");
        stop?.abort();
        await client.deleteAccount(pw!);
        localStorage.removeItem(LAST);
        forgetSession();
        announce("Account deleted.");
      },
    }),
  );
  void loadSessions();
}

// ---- routing ----

function route() {
  const [, page, arg] = location.hash.match(/^#\/([a-z]*)\/?(.*)$/) ?? [];
  const param = arg ? decodeURIComponent(arg) : "";
  if (!me) {
    if (page === "register") return registerScreen();
    if (page === "recover") return recoverScreen();
    return loginScreen();
  }
  if (page === "c" && param) return conversationScreen(param);
  if (page === "contact" && param) return void contactScreen(param);
  if (page === "settings") return settingsScreen();
  if (page === "register" || page === "login" || page === "recover") location.hash = "#/";
  return conversationsScreen();
}

async function start() {
  const last = localStorage.getItem(LAST);
  if (last) {
    try {
      const a = await client.resume(last);
      await signedIn({ userId: a.userId, email: a.email });
    } catch {
      localStorage.removeItem(LAST);
    }
  }
  window.addEventListener("hashchange", route);
  route();
  document.body.dataset.ready = "true";
}

void start();
