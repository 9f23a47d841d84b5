//! Everything done before the clock starts: real accounts (prelogin, Argon2id once per account,
//! registration, login — through the SDK's typed [`Api`]), real sealed envelopes, and a mailbox
//! filled to a given size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use sealpost_client::api::{
    Api, Kdf, LoginRequest, Page, RegisterRequest, Secret, SecretBytes, SendRequest,
};
use sealpost_crypto::{derive, seal, AccountKey, KdfParams, KeyPair, Payload, WrapKey};
use uuid::Uuid;

use crate::http::{Conn, Req, Target};

/// The ciphertext size of the issue's send: the smallest envelope (one 256-byte block).
pub const ENVELOPE_BYTES: usize = 344;

/// A signed-in bench account, with what the timed phase needs of it.
#[derive(Debug)]
pub struct Account {
    pub email: String,
    pub user_id: Uuid,
    pub key_version: i64,
    pub keys: KeyPair,
    /// The login proof, precomputed so that login can be timed without the KDF.
    pub auth_key: SecretBytes,
    pub token: Secret,
}

/// The bench accounts' email for a tag and an index.
pub fn email(tag: &str, name: &str) -> String {
    format!("{tag}-{name}@bench.example")
}

/// The password of every bench account (they are throwaway, and a rerun must sign in again).
fn password(email: &str) -> String {
    format!("sealpost-bench password for {email}")
}

/// Signs in (registering first when needed) the accounts with these emails, a few at a time:
/// Argon2id runs on blocking threads, one per core.
pub async fn accounts(api: &Api, emails: Vec<String>) -> anyhow::Result<Vec<Account>> {
    let started = Instant::now();
    let total = emails.len();
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let accounts: Vec<Account> = stream::iter(emails)
        .map(|email| account(api, email))
        .buffered(parallel)
        .try_collect()
        .await?;
    eprintln!(
        "  {total} accounts signed in in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(accounts)
}

/// One account: register with the limits prelogin hands out (derived once), or, if the email is
/// taken by an earlier run, derive with the stored salt and unwrap the keys from login.
async fn account(api: &Api, email: String) -> anyhow::Result<Account> {
    let offered = api.prelogin(&email).await?;
    // PROTOCOL §2.1: refuse weak or odd limits before deriving anything.
    let offered = offered.to_params()?;
    let fresh = KdfParams::new(offered.opslimit, offered.memlimit)?;
    let (wrap_key, auth_key) = derive_blocking(password(&email), fresh).await?;
    let keys = KeyPair::generate();
    let account_key = AccountKey::generate();
    let register = RegisterRequest {
        email: email.clone(),
        kdf: Kdf::from(&fresh),
        auth_key: auth_key.clone(),
        wrapped_account_key: account_key.wrap(&wrap_key).into(),
        public_key: keys.public().as_bytes().to_vec(),
        wrapped_secret_key: account_key.wrap_secret_key(keys.secret()),
        recovery: None,
    };
    let (keys, auth_key, login) = match api.register(&register).await {
        Ok(_) => {
            let login = login(api, &email, &auth_key).await?;
            (keys, auth_key, login)
        }
        Err(e) if e.status() == Some(409) => {
            // An earlier run made it: prelogin answered its real salt.
            let (wrap_key, auth_key) = derive_blocking(password(&email), offered).await?;
            let login = login(api, &email, &auth_key).await?;
            let account_key = AccountKey::unwrap(login.wrapped_account_key.expose(), &wrap_key)?;
            let public = sealpost_crypto::PublicKey::from_bytes(&login.keys.public_key)?;
            let keys = account_key.unwrap_key_pair(&login.keys.wrapped_secret_key, &public)?;
            (keys, auth_key, login)
        }
        Err(e) => return Err(anyhow::anyhow!("cannot register {email}: {e}")),
    };
    Ok(Account {
        email,
        user_id: login.user_id,
        key_version: login.keys.key_version,
        keys,
        auth_key,
        token: login.access_token,
    })
}

async fn derive_blocking(
    password: String,
    params: KdfParams,
) -> anyhow::Result<(WrapKey, SecretBytes)> {
    let (wrap_key, auth_key) =
        tokio::task::spawn_blocking(move || derive(&password, &params)).await??;
    Ok((wrap_key, SecretBytes::from_slice(auth_key.expose_secret())))
}

async fn login(
    api: &Api,
    email: &str,
    auth_key: &SecretBytes,
) -> anyhow::Result<sealpost_client::api::LoginResponse> {
    api.login(&LoginRequest {
        email: email.to_owned(),
        auth_key: auth_key.clone(),
        device_name: Some("sealpost-bench".to_owned()),
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot sign in {email}: {e}"))
}

/// The `POST /v1/auth/login` body of an account, for the login scenario.
pub fn login_body(account: &Account) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&LoginRequest {
        email: account.email.clone(),
        auth_key: account.auth_key.clone(),
        device_name: Some("sealpost-bench".to_owned()),
    })?)
}

/// Logs `account` in once more (untimed), for a session of its own; answers its refresh token.
pub async fn new_session(api: &Api, account: &Account) -> anyhow::Result<Secret> {
    let login = api
        .login(&LoginRequest {
            email: account.email.clone(),
            auth_key: account.auth_key.clone(),
            device_name: Some("sealpost-bench refresh".to_owned()),
        })
        .await?;
    Ok(login.refresh_token)
}

/// `POST /v1/auth/refresh` with `token`.
pub fn refresh_request(token: &Secret) -> anyhow::Result<Req> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        refresh_token: &'a Secret,
    }
    Req::post_json(
        "/v1/auth/refresh",
        None,
        serde_json::to_vec(&Body {
            refresh_token: token,
        })?,
    )
}

/// The refresh that follows a refresh's answer (its new token).
pub fn next_refresh(answer: &[u8]) -> anyhow::Result<Req> {
    let pair: sealpost_client::api::TokenPair = serde_json::from_slice(answer)?;
    refresh_request(&pair.refresh_token)
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A `POST /v1/messages` body: a real envelope sealed from `from` to `to` (344 bytes).
pub fn send_body(from: &Account, to: &Account, n: usize) -> anyhow::Result<Vec<u8>> {
    let payload = Payload::text(from.user_id, to.user_id, now_ms(), format!("bench #{n}"));
    let ciphertext = seal(&payload, to.keys.public(), &from.keys);
    anyhow::ensure!(
        ciphertext.len() == ENVELOPE_BYTES,
        "the envelope is {} bytes, not {ENVELOPE_BYTES}",
        ciphertext.len()
    );
    Ok(serde_json::to_vec(&SendRequest {
        to: to.user_id,
        ciphertext,
        key_version: to.key_version,
        sender_key_version: from.key_version,
        sender_copy: None,
    })?)
}

/// `n` distinct sends from `from` to `to`, ready to go.
pub fn send_requests(from: &Account, to: &Account, n: usize) -> anyhow::Result<Vec<Req>> {
    (0..n)
        .map(|i| {
            Req::post_json(
                "/v1/messages",
                Some(from.token.expose()),
                send_body(from, to, i)?,
            )
        })
        .collect()
}

/// The newest `seq` of an account's mailbox (0 when empty).
pub async fn newest_seq(api: &Api, account: &Account) -> anyhow::Result<i64> {
    let mut api = api.clone();
    api.set_token(Some(account.token.clone()));
    let page = api
        .messages(Page::Before {
            before: i64::MAX,
            limit: Some(1),
        })
        .await?;
    Ok(page.messages.first().map_or(0, |m| m.seq))
}

/// Sends from `senders` to `owner` over `connections` connections until the owner's mailbox
/// holds `want` entries; does nothing when it already does.
pub async fn fill(
    api: &Api,
    target: &Target,
    owner: &Account,
    senders: &[Account],
    want: u64,
    connections: usize,
) -> anyhow::Result<()> {
    let have = u64::try_from(newest_seq(api, owner).await?).unwrap_or(0);
    if have >= want {
        eprintln!("  the inbox already holds {have} entries (≥ {want}): no fill");
        return Ok(());
    }
    let missing = want - have;
    eprintln!("  filling the inbox: {have} → {want} entries over {connections} connections…");
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..connections.max(1) {
        let sender = &senders[c % senders.len()];
        let reqs = send_requests(sender, owner, 4)?;
        let (sent, failed, target) = (Arc::clone(&sent), Arc::clone(&failed), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut i = 0;
            let mut last_error = None;
            while sent.fetch_add(1, Ordering::Relaxed) < missing {
                if let Err(e) = conn.send(&reqs[i % reqs.len()]).await {
                    sent.fetch_sub(1, Ordering::Relaxed);
                    if failed.fetch_add(1, Ordering::Relaxed) > 1000 {
                        return Err(anyhow::anyhow!("the fill keeps failing: {e}"));
                    }
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                i += 1;
            }
            if let Some(e) = last_error {
                eprintln!("  (fill: some sends failed and were retried, e.g. {e})");
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  filled {missing} entries in {secs:.1}s ({:.0}/s)",
        missing as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use sealpost_crypto::b64;

    use super::*;

    #[test]
    fn envelopes_are_the_issue_size_and_the_wire_shape() {
        let account = |name: &str| Account {
            email: email("t", name),
            user_id: Uuid::new_v4(),
            key_version: 1,
            keys: KeyPair::generate(),
            auth_key: vec![7; 32].into(),
            token: "token".into(),
        };
        let (alice, bob) = (account("a"), account("b"));
        let body: serde_json::Value =
            serde_json::from_slice(&send_body(&alice, &bob, 123_456).unwrap()).unwrap();
        assert_eq!(body["to"], bob.user_id.to_string());
        assert_eq!(body["key_version"], 1);
        let ct = b64::decode(body["ciphertext"].as_str().unwrap()).unwrap();
        assert_eq!(ct.len(), ENVELOPE_BYTES);
        let opened = sealpost_crypto::open(
            &ct,
            &bob.keys,
            bob.user_id,
            alice.user_id,
            alice.keys.public(),
            now_ms(),
        )
        .unwrap();
        assert_eq!(opened.body, "bench #123456");
        let login: serde_json::Value =
            serde_json::from_slice(&login_body(&alice).unwrap()).unwrap();
        assert_eq!(login["email"], "t-a@bench.example");
    }
}
