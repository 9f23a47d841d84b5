/** Registration, login, resume, logout and the key lifecycle of PROTOCOL §5, each run one at a time within a client. */
import { normalizeEmail } from "./contacts.js";
import type { Core } from "./core.js";
import { SealpostError } from "./errors.js";
import { fromBase64Length, isUuid, toBase64 } from "./protocol/encoding.js";
import {
  checkKdf,
  generateKeyPair,
  type Kdf,
  newKdf,
  parseRecoveryKey,
  passwordBytes,
  type PasswordKeys,
  publicKeyOf,
  randomKey,
  recoveryKeys,
  recoveryKeyText,
  unwrap,
  wrap,
} from "./protocol/keys.js";
import { equalBytes } from "./protocol/encoding.js";
import { ready, wipe } from "./protocol/sodium.js";
import { decodeState, newestKey, type OwnKey, type State, wipeState } from "./state.js";

/** Who is signed in. */
export interface Account {
  userId: string;
  email: string;
  keyVersion: number;
  sessionId: string | undefined;
}

/** A session of the account (§4). */
export interface Session {
  id: string;
  deviceName: string | null;
  createdAt: Date;
  lastUsedAt: Date;
  current: boolean;
}

interface LoginAnswer {
  user_id: string;
  session_id: string;
  access_token: string;
  refresh_token: string;
  expires_in: number;
  wrapped_account_key: string;
  keys: { public_key: string; key_version: number; wrapped_secret_key: string };
  previous_keys: { public_key: string; key_version: number; wrapped_secret_key: string }[];
}

/** The account part of a client. */
export class Accounts {
  constructor(private readonly core: Core) {}

  /** Who is signed in, or undefined. */
  account(): Account | undefined {
    const s = this.core.state;
    if (s === null) return undefined;
    return {
      userId: s.userId,
      email: s.email,
      keyVersion: newestKey(s).version,
      sessionId: s.session?.id,
    };
  }

  /** prelogin's kdf for `email`, checked against §2.1 before anything is derived. */
  private async prelogin(email: string): Promise<Kdf> {
    const r = await this.core.http.call<{ kdf: unknown }>({
      method: "POST",
      path: "/v1/auth/prelogin",
      body: { email },
    });
    return checkKdf(r?.kdf);
  }

  private async derive(password: string, kdf: Kdf): Promise<PasswordKeys> {
    if (typeof password !== "string")
      throw new SealpostError("invalid_input", "a password is a string");
    return this.core.kdf(passwordBytes(password), kdf);
  }

  /** Registers with the server's default limits and a fresh salt, then signs in; answers the recovery key's text (shown once) unless `recoveryKey: false`. */
  register(
    email: string,
    password: string,
    options: { recoveryKey?: boolean; deviceName?: string } = {},
  ): Promise<{ userId: string; recoveryKey: string | undefined }> {
    return this.core.serial(async () => {
      await ready();
      const mail = normalizeEmail(email);
      const limits = await this.prelogin(mail);
      const kdf = newKdf({ opslimit: limits.opslimit, memlimit: limits.memlimit });
      const keys = await this.derive(password, kdf);
      const accountKey = randomKey();
      const pair = generateKeyPair();
      const body: Record<string, unknown> = {
        email: mail,
        kdf,
        auth_key: toBase64(keys.authKey),
        wrapped_account_key: toBase64(wrap(accountKey, keys.wrapKey)),
        public_key: toBase64(pair.publicKey),
        wrapped_secret_key: toBase64(wrap(pair.secretKey, accountKey)),
      };
      let text: string | undefined;
      if (options.recoveryKey ?? true) {
        const rk = randomKey();
        const rks = recoveryKeys(rk);
        body.recovery = {
          auth_key: toBase64(rks.authKey),
          wrapped_account_key: toBase64(wrap(accountKey, rks.wrapKey)),
        };
        text = recoveryKeyText(rk);
        wipe(rk, rks.authKey, rks.wrapKey);
      }
      wipe(accountKey, pair.secretKey);
      try {
        await this.core.http.call({ method: "POST", path: "/v1/accounts", body });
        const account = await this.signIn(mail, keys, options.deviceName);
        return { userId: account.userId, recoveryKey: text };
      } finally {
        wipe(keys.authKey, keys.wrapKey);
      }
    });
  }

  /** Signs in with a password: prelogin's kdf is checked before anything is derived, so a weak answer never leads to a login request. */
  login(email: string, password: string, options: { deviceName?: string } = {}): Promise<Account> {
    return this.core.serial(async () => {
      await ready();
      const mail = normalizeEmail(email);
      const kdf = await this.prelogin(mail);
      const keys = await this.derive(password, kdf);
      try {
        return await this.signIn(mail, keys, options.deviceName);
      } finally {
        wipe(keys.authKey, keys.wrapKey);
      }
    });
  }

  private async signIn(
    email: string,
    keys: PasswordKeys,
    deviceName: string | undefined,
  ): Promise<Account> {
    const body: Record<string, unknown> = { email, auth_key: toBase64(keys.authKey) };
    if (deviceName !== undefined) body.device_name = deviceName;
    let r: LoginAnswer;
    try {
      r = await this.core.http.call<LoginAnswer>({ method: "POST", path: "/v1/auth/login", body });
    } catch (e) {
      if (e instanceof SealpostError && e.status === 401) {
        throw new SealpostError("wrong_password", "wrong email or password", { status: 401 });
      }
      throw e;
    }
    if (!isUuid(r.user_id) || !isUuid(r.session_id) || typeof r.access_token !== "string") {
      throw new SealpostError("protocol", "the server's login answer is not the protocol's");
    }
    const accountKey = unwrap(
      fromBase64Length(r.wrapped_account_key, 72, "wrapped_account_key"),
      keys.wrapKey,
    );
    const own: OwnKey[] = [r.keys, ...r.previous_keys].map((k) => {
      const secretKey = unwrap(
        fromBase64Length(k.wrapped_secret_key, 72, "wrapped_secret_key"),
        accountKey,
      );
      const publicKey = fromBase64Length(k.public_key, 32, "public_key");
      if (!equalBytes(publicKeyOf(secretKey), publicKey)) {
        throw new SealpostError(
          "protocol",
          `key version ${k.key_version}: the public key is not the secret key's`,
        );
      }
      return { version: k.key_version, publicKey, secretKey };
    });
    const previous = await this.core.store.load(this.core.origin, r.user_id);
    let kept: Pick<State, "contacts" | "pendingEmails" | "seen"> = {
      contacts: {},
      pendingEmails: {},
      seen: {},
    };
    if (previous !== undefined) {
      const old = decodeState(previous);
      wipe(previous);
      kept = { contacts: old.contacts, pendingEmails: old.pendingEmails, seen: old.seen };
      wipeState(old);
    }
    const state: State = {
      server: this.core.origin,
      userId: r.user_id,
      email,
      accountKey,
      keys: own,
      session: { id: r.session_id, refreshToken: r.refresh_token },
      ...kept,
    };
    this.core.adopt(state, r.access_token, r.expires_in);
    await this.core.save();
    return this.account()!;
  }

  /** Picks up the session this store holds for the server (the one account, or `userId`) without a password: refreshes for an access token. */
  resume(userId?: string): Promise<Account> {
    return this.core.serial(async () => {
      await ready();
      const ids = await this.core.store.list(this.core.origin);
      const id = userId ?? (ids.length === 1 ? ids[0] : undefined);
      if (id === undefined || !ids.includes(id)) {
        throw new SealpostError(
          "signed_out",
          ids.length > 1
            ? "several accounts are stored here: name the user id to resume"
            : "no session to resume: log in",
        );
      }
      const bytes = await this.core.store.load(this.core.origin, id);
      if (bytes === undefined)
        throw new SealpostError("signed_out", "no session to resume: log in");
      const state = decodeState(bytes);
      wipe(bytes);
      if (state.session === null) {
        wipeState(state);
        throw new SealpostError("signed_out", "the stored session has ended: log in");
      }
      this.core.attach(state);
      await this.core.refresh();
      return this.account()!;
    });
  }

  /** Signs out: the session is revoked, this account's record deleted from the store, other tabs told. */
  logout(): Promise<void> {
    return this.core.serial(async () => {
      const s = this.core.need();
      try {
        await this.core.authed({ method: "POST", path: "/v1/auth/logout" });
      } catch (e) {
        if (!(e instanceof SealpostError && (e.code === "signed_out" || e.status === 401))) throw e;
      }
      await this.forget(s);
    });
  }

  private async forget(s: State): Promise<void> {
    await this.core.store.delete(this.core.origin, s.userId);
    this.core.broadcastSignedOut();
    this.core.drop();
  }

  /** Proves the password: derives its auth key with the account's current kdf. */
  private async prove(password: string): Promise<{ keys: PasswordKeys; kdf: Kdf }> {
    const s = this.core.need();
    const kdf = await this.prelogin(s.email);
    return { keys: await this.derive(password, kdf), kdf };
  }

  private async withProof<T>(
    password: string,
    fn: (authKey: string, kdf: Kdf) => Promise<T>,
  ): Promise<T> {
    const { keys, kdf } = await this.prove(password);
    try {
      return await fn(toBase64(keys.authKey), kdf);
    } catch (e) {
      if (e instanceof SealpostError && e.status === 403)
        throw new SealpostError("wrong_password", "wrong password", { status: 403 });
      throw e;
    } finally {
      wipe(keys.authKey, keys.wrapKey);
    }
  }

  /** Changes the password: the same account key re-wrapped, every other session revoked, no key pair touched. */
  changePassword(current: string, next: string): Promise<void> {
    return this.core.serial(() =>
      this.withProof(current, async (authKey, kdf) => {
        const s = this.core.need();
        const fresh = newKdf({ opslimit: kdf.opslimit, memlimit: kdf.memlimit });
        const keys = await this.derive(next, fresh);
        try {
          await this.core.authed({
            method: "PUT",
            path: "/v1/account/password",
            body: {
              current_auth_key: authKey,
              kdf: fresh,
              auth_key: toBase64(keys.authKey),
              wrapped_account_key: toBase64(wrap(s.accountKey, keys.wrapKey)),
            },
          });
        } finally {
          wipe(keys.authKey, keys.wrapKey);
        }
      }),
    );
  }

  /** Makes a new recovery key (the old one stops working) and answers its text, to show once. */
  newRecoveryKey(password: string): Promise<string> {
    return this.core.serial(() =>
      this.withProof(password, async (authKey) => {
        const s = this.core.need();
        const rk = randomKey();
        const rks = recoveryKeys(rk);
        try {
          await this.core.authed({
            method: "PUT",
            path: "/v1/account/recovery",
            body: {
              current_auth_key: authKey,
              recovery: {
                auth_key: toBase64(rks.authKey),
                wrapped_account_key: toBase64(wrap(s.accountKey, rks.wrapKey)),
              },
            },
          });
          return recoveryKeyText(rk);
        } finally {
          wipe(rk, rks.authKey, rks.wrapKey);
        }
      }),
    );
  }

  /** Sets a new password with the recovery key (a typo is `recovery_key_typo`), then signs in; every session the account had is revoked. */
  recover(
    email: string,
    recoveryKey: string,
    newPassword: string,
    options: { deviceName?: string } = {},
  ): Promise<Account> {
    return this.core.serial(async () => {
      await ready();
      const mail = normalizeEmail(email);
      const rk = parseRecoveryKey(recoveryKey);
      const rks = recoveryKeys(rk);
      wipe(rk);
      let answer: { recovery_token: string; wrapped_account_key: string };
      try {
        answer = await this.core.http.call({
          method: "POST",
          path: "/v1/auth/recover",
          body: { email: mail, recovery_auth_key: toBase64(rks.authKey) },
        });
      } catch (e) {
        wipe(rks.authKey, rks.wrapKey);
        if (e instanceof SealpostError && e.status === 401)
          throw new SealpostError("unauthenticated", "wrong email or recovery key", {
            status: 401,
          });
        throw e;
      }
      const accountKey = unwrap(
        fromBase64Length(answer.wrapped_account_key, 72, "wrapped_account_key"),
        rks.wrapKey,
      );
      wipe(rks.authKey, rks.wrapKey);
      const limits = await this.prelogin(mail);
      const kdf = newKdf({ opslimit: limits.opslimit, memlimit: limits.memlimit });
      const keys = await this.derive(newPassword, kdf);
      try {
        await this.core.http.call({
          method: "PUT",
          path: "/v1/account/password",
          body: {
            recovery_token: answer.recovery_token,
            kdf,
            auth_key: toBase64(keys.authKey),
            wrapped_account_key: toBase64(wrap(accountKey, keys.wrapKey)),
          },
        });
        wipe(accountKey);
        return await this.signIn(mail, keys, options.deviceName);
      } finally {
        wipe(keys.authKey, keys.wrapKey);
      }
    });
  }

  /** Publishes a new key pair (version + 1) for new messages; every older one is kept, so old messages still open. */
  rotateKeys(password: string): Promise<{ keyVersion: number }> {
    return this.core.serial(() =>
      this.withProof(password, async (authKey) => {
        const s = this.core.need();
        const pair = generateKeyPair();
        const version = newestKey(s).version + 1;
        await this.core.authed({
          method: "POST",
          path: "/v1/keys/rotate",
          body: {
            current_auth_key: authKey,
            public_key: toBase64(pair.publicKey),
            key_version: version,
            wrapped_secret_key: toBase64(wrap(pair.secretKey, s.accountKey)),
          },
        });
        s.keys.push({ version, publicKey: pair.publicKey, secretKey: pair.secretKey });
        await this.core.save();
        return { keyVersion: version };
      }),
    );
  }

  /** Deletes the account for good (its mailbox too); its public keys stay so what it sent still verifies. */
  deleteAccount(password: string): Promise<void> {
    return this.core.serial(() =>
      this.withProof(password, async (authKey) => {
        const s = this.core.need();
        await this.core.authed({
          method: "POST",
          path: "/v1/account/delete",
          body: { current_auth_key: authKey },
        });
        await this.forget(s);
      }),
    );
  }

  /** The account's sessions. */
  async sessions(): Promise<Session[]> {
    const r = await this.core.authed<{
      sessions: {
        id: string;
        device_name: string | null;
        created_at: string;
        last_used_at: string;
        current: boolean;
      }[];
    }>({ method: "GET", path: "/v1/sessions" });
    return r.sessions.map((x) => ({
      id: x.id,
      deviceName: x.device_name ?? null,
      createdAt: new Date(x.created_at),
      lastUsedAt: new Date(x.last_used_at),
      current: x.current,
    }));
  }

  /** Revokes a session of the account (its streams close with 4401). */
  revokeSession(id: string): Promise<void> {
    return this.core.serial(async () => {
      if (!isUuid(id)) throw new SealpostError("invalid_input", "a session id is a UUID");
      await this.core.authed({ method: "DELETE", path: `/v1/sessions/${id}` });
    });
  }
}
