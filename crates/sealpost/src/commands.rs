//! The client commands: register, login, logout, whoami, send, inbox, sessions, safety-number,
//! trust, and the key lifecycle (passwd, recovery-key, recover, rotate-keys, delete-account).
//! Each is a thin shell over the SDK (`sealpost_client`), with its state in a [`FileKeystore`]
//! under `$SEALPOST_HOME` or the platform's config directory.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use futures_util::StreamExt as _;
use sealpost_client::keystore::Keystore as _;
use sealpost_client::{
    format_safety_number, normalize_email, Client, Error, FileKeystore, Identity, Received,
    RegisterOptions, StreamEvent, Transport,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ui::{self, safe};
use crate::{ClientCommand as Command, DEFAULT_SERVER};

/// Where the state is, which server was asked for, and how to reach it.
#[derive(Debug)]
pub struct Context {
    server: Option<String>,
    home: PathBuf,
    transport: Transport,
}

/// How the client reaches servers: `--ca-cert` and `--insecure-http` (PROTOCOL §7).
pub fn transport(ca_cert: Option<&Path>, insecure_http: bool) -> anyhow::Result<Transport> {
    let mut transport = Transport::new().allow_insecure_http(insecure_http);
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        transport = transport
            .trust_ca_pem(&pem)
            .with_context(|| format!("the CA certificate {}", path.display()))?;
    }
    Ok(transport)
}

impl Context {
    pub fn new(
        server: Option<String>,
        home: Option<PathBuf>,
        transport: Transport,
    ) -> anyhow::Result<Context> {
        let home = match home {
            Some(home) => home,
            None => dirs::config_dir()
                .map(|dir| dir.join("sealpost"))
                .context("no config directory on this platform: set SEALPOST_HOME")?,
        };
        let server = server.map(|s| s.trim().trim_end_matches('/').to_owned());
        Ok(Context {
            server,
            home,
            transport,
        })
    }

    fn keystore(&self) -> anyhow::Result<FileKeystore> {
        Ok(FileKeystore::open(&self.home)?)
    }

    /// A client for registering or logging in: the server asked for, or the default.
    fn fresh_client(&self) -> anyhow::Result<Client> {
        let server = self.server.as_deref().unwrap_or(DEFAULT_SERVER);
        let client = Client::with_transport(server, self.keystore()?, &self.transport)?;
        ui::show_kdf_progress(&client);
        Ok(client)
    }

    /// A client for the account this state holds.
    fn client(&self) -> anyhow::Result<Client> {
        let keystore = self.keystore()?;
        let Some(account) = keystore.load()?.account else {
            bail!(
                "no account in {}: run `sealpost register <email>` or `sealpost login <email>` first",
                self.home.display()
            );
        };
        if let Some(server) = &self.server {
            if *server != account.server {
                bail!(
                    "{} is signed in to {}, not {server}: run `sealpost logout`, then `sealpost login {}` with that server to switch",
                    self.home.display(),
                    account.server,
                    account.email
                );
            }
        }
        let client = Client::with_transport(&account.server, keystore, &self.transport)?;
        ui::show_kdf_progress(&client);
        Ok(client)
    }

    /// A client whose secret keys are unwrapped with the password.
    async fn unlocked_client(&self) -> anyhow::Result<Client> {
        let client = self.client()?;
        let me = signed_in(&client)?;
        unlock(&client, &me.email).await?;
        Ok(client)
    }
}

/// Who the client is signed in as, or a hint to sign in.
fn signed_in(client: &Client) -> anyhow::Result<Identity> {
    let me = client.whoami()?.context("no account here")?;
    if !me.signed_in {
        bail!("signed out: run `sealpost login {}`", me.email);
    }
    Ok(me)
}

/// Unwraps the keys with the password.
async fn unlock(client: &Client, email: &str) -> anyhow::Result<()> {
    let password = ui::password(email, false)?;
    client.unlock(&password).await?;
    Ok(())
}

pub async fn run(context: Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Register {
            email,
            no_recovery_key,
            device,
        } => register(&context, &email, !no_recovery_key, device).await,
        Command::Login { email, device } => {
            let client = context.fresh_client()?;
            let email = normalize_email(&email);
            let password = ui::password(&email, false)?;
            client
                .login(&email, &password, Some(device_name(device)))
                .await?;
            println!(
                "Signed in as {} on {}.",
                safe(&email),
                safe(client.server())
            );
            Ok(())
        }
        Command::Logout => {
            let client = context.client()?;
            client.logout().await?;
            println!("Signed out.");
            Ok(())
        }
        Command::Whoami => whoami(&context),
        Command::Send { email, text } => send(&context, &email, &text).await,
        Command::Inbox { json, follow } => inbox(&context, json, follow).await,
        Command::Sessions => sessions(&context).await,
        Command::SafetyNumber { email } => safety_number(&context, &email).await,
        Command::Trust { email } => {
            let client = context.client()?;
            let contact = client.trust(email.as_str()).await.map_err(ui::warn)?;
            let who = safe(contact.email.as_deref().unwrap_or(email.as_str()));
            println!(
                "Now trusting the key of {who} (version {}). Safety number:\n\n    {}",
                contact.key_version,
                format_safety_number(&contact.safety_number)
            );
            Ok(())
        }
        Command::Passwd => passwd(&context).await,
        Command::RecoveryKey => {
            let client = context.unlocked_client().await?;
            let text = client.new_recovery_key().await?;
            print_recovery_key(&text);
            println!("\nThe previous recovery key, if there was one, no longer works.");
            Ok(())
        }
        Command::Recover { email, device } => recover(&context, &email, device).await,
        Command::RotateKeys => rotate_keys(&context).await,
        Command::DeleteAccount { yes } => delete_account(&context, yes).await,
    }
}

fn device_name(device: Option<String>) -> String {
    device.unwrap_or_else(|| "sealpost CLI".to_owned())
}

async fn register(
    context: &Context,
    email: &str,
    recovery_key: bool,
    device: Option<String>,
) -> anyhow::Result<()> {
    let client = context.fresh_client()?;
    let email = normalize_email(email);
    let password = ui::password(&email, true)?;
    let options = RegisterOptions {
        recovery_key,
        device_name: Some(device_name(device)),
    };
    let registration = client.register(&email, &password, options).await?;
    println!(
        "Registered {email} on {} (user id {}), and signed in.",
        client.server(),
        registration.user_id
    );
    match &registration.recovery_key {
        Some(text) => print_recovery_key(text),
        None => println!(
            "\nNo recovery key was made. If you forget your password, your messages are\n\
             gone for good: nobody, the server's operator included, can get them back.\n\
             `sealpost recovery-key` makes one at any time."
        ),
    }
    Ok(())
}

/// Shows a recovery key, the one time it is shown.
fn print_recovery_key(text: &str) {
    println!(
        "\nYour recovery key. It is shown this once and kept nowhere: write it down and keep it\n\
         somewhere safe. With it you can set a new password if you forget yours; whoever holds\n\
         it can read your messages.\n\n    {text}\n\n\
         Without your password and this recovery key, your messages are gone for good: nobody,\n\
         the server's operator included, can get them back."
    );
}

async fn passwd(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let me = signed_in(&client)?;
    let current = ui::current_password(&me.email)?;
    let new = ui::new_password(&me.email)?;
    client.change_password(&current, &new).await?;
    println!(
        "Changed the password of {}.\n\
         Every other session was signed out; keys and messages are as they were.",
        me.email
    );
    Ok(())
}

async fn recover(context: &Context, email: &str, device: Option<String>) -> anyhow::Result<()> {
    let client = context.fresh_client()?;
    let email = normalize_email(email);
    let recovery_key = ui::recovery_key()?;
    let password = ui::new_password(&email)?;
    client
        .recover(&email, &recovery_key, &password, Some(device_name(device)))
        .await?;
    println!(
        "Set a new password for {email} with the recovery key, and signed in on {}.\n\
         Every other session was signed out. The recovery key still works;\n\
         `sealpost recovery-key` replaces it.",
        client.server()
    );
    Ok(())
}

async fn rotate_keys(context: &Context) -> anyhow::Result<()> {
    let client = context.unlocked_client().await?;
    let version = client.rotate_keys().await?;
    let me = client.whoami()?.context("no account here")?;
    println!(
        "New key pair: version {version}, fingerprint {}.\n\
         Messages sealed to older versions still open. Your contacts will see a key change:\n\
         compare safety numbers with them again.",
        format_safety_number(&sealpost_crypto::fingerprint_digits(
            me.user_id,
            &me.public_key
        ))
    );
    Ok(())
}

async fn delete_account(context: &Context, yes: bool) -> anyhow::Result<()> {
    let client = context.client()?;
    let me = signed_in(&client)?;
    if !yes {
        let warning = format!(
            "This deletes the account {} for good: the server forgets its email, password,\n\
             keys, sessions and every message in its mailbox. Nothing can bring them back.",
            me.email
        );
        if !ui::confirmed_by_typing(&me.email, &warning)? {
            bail!("not deleted: what was typed is not {}", me.email);
        }
    }
    unlock(&client, &me.email).await?;
    client.delete_account().await?;
    println!(
        "Deleted {}. The server no longer holds its email, password, keys, sessions\n\
         or mailbox, and the local state is cleared. Messages it sent stay with their recipients.",
        me.email
    );
    Ok(())
}

fn whoami(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let me = client.whoami()?.context("no account here")?;
    println!("{}", safe(&me.email));
    println!("  user id:     {}", me.user_id);
    println!("  server:      {}", safe(&me.server));
    println!(
        "  session:     {}",
        if me.signed_in {
            "signed in"
        } else {
            "signed out"
        }
    );
    println!(
        "  key:         version {}, fingerprint {}",
        me.key_version,
        format_safety_number(&sealpost_crypto::fingerprint_digits(
            me.user_id,
            &me.public_key
        ))
    );
    println!("  local state: {}", context.home.display());
    Ok(())
}

async fn send(context: &Context, email: &str, text: &str) -> anyhow::Result<()> {
    let text = if text == "-" {
        let mut buffer = String::new();
        std::io::stdin()
            .read_to_string(&mut buffer)
            .context("cannot read the message from standard input")?;
        if buffer.ends_with('\n') {
            buffer.pop();
            if buffer.ends_with('\r') {
                buffer.pop();
            }
        }
        buffer
    } else {
        text.to_owned()
    };
    if text.is_empty() {
        bail!("an empty message: nothing to send");
    }
    let client = context.unlocked_client().await?;
    let sent = client.send(email, &text).await.map_err(ui::warn)?;
    let who = safe(sent.to.email.as_deref().unwrap_or(email));
    println!("Sent to {who} (#{} in their mailbox).", sent.seq);
    Ok(())
}

async fn inbox(context: &Context, json: bool, follow: bool) -> anyhow::Result<()> {
    let client = context.unlocked_client().await?;
    let mut printer = Printer {
        json,
        warned: HashSet::new(),
        shown: 0,
        refused: 0,
    };
    if !follow {
        for received in client.fetch_all(0).await? {
            printer.print(&received);
        }
        if printer.shown == 0 && !json {
            println!("No messages.");
        }
        if printer.refused > 0 {
            bail!(
                "{} of the messages were refused as forged or replayed (see above): the server, or someone with its data, is tampering with your mailbox",
                printer.refused
            );
        }
        return Ok(());
    }
    let mut live = client.stream(0);
    while let Some(event) = live.next().await {
        match event? {
            StreamEvent::Connected { after } if after > 0 => {
                eprintln!("(connected again; following from #{after})")
            }
            StreamEvent::Connected { .. } => eprintln!("(following; Ctrl-C to stop)"),
            StreamEvent::Message(received) => printer.print(&received),
            StreamEvent::Disconnected { reason, .. } => {
                eprintln!("(disconnected: {}; reconnecting…)", safe(&reason))
            }
        }
    }
    Ok(())
}

/// Prints mailbox entries, warning once per contact about a key change.
struct Printer {
    json: bool,
    warned: HashSet<uuid::Uuid>,
    shown: usize,
    /// Entries refused as forged or replayed: the exit status says so.
    refused: usize,
}

impl Printer {
    fn print(&mut self, received: &Received) {
        self.shown += 1;
        match &received.message {
            Err(Error::KeyChanged(change)) if self.warned.insert(change.user_id) => {
                eprintln!("{}", ui::key_change_warning(change));
            }
            Err(e) if is_tampering(e) => self.refused += 1,
            _ => {}
        }
        if self.json {
            println!("{}", ui::safe_json(&json_line(received)));
            return;
        }
        let entry = &received.entry;
        match &received.message {
            Ok(m) => {
                let from = if m.outgoing {
                    "you".to_owned()
                } else {
                    sender(
                        m.from_email.as_deref(),
                        m.from_claimed_email.as_deref(),
                        m.from,
                    )
                };
                let to = if m.outgoing && m.to != m.from {
                    name(m.to_email.as_deref(), m.to)
                } else {
                    "you".to_owned()
                };
                println!(
                    "#{}  {}  {} → {}",
                    m.seq,
                    human_time(m.sent_at),
                    safe(&from),
                    safe(&to)
                );
                // Each line of the text indented, so that none can pass for a header.
                for line in m.text.lines() {
                    println!("    {}", safe(line));
                }
                println!();
            }
            Err(e) => {
                println!(
                    "#{}  {}  from {}: cannot be shown: {}\n",
                    entry.seq,
                    human_time(entry.created_at),
                    safe(&name(entry.from_email.as_deref(), entry.from)),
                    safe(&e.to_string())
                );
            }
        }
    }
}

fn name(email: Option<&str>, id: uuid::Uuid) -> String {
    email.map_or_else(|| id.to_string(), str::to_owned)
}

/// A sender as people should read it: an account that claims an email pinned to another one is
/// an unverified sender, never shown under that name.
fn sender(email: Option<&str>, claimed: Option<&str>, id: uuid::Uuid) -> String {
    match (email, claimed) {
        (None, Some(claimed)) => {
            format!("UNVERIFIED sender {id} (NOT your contact {claimed}, whatever it claims)")
        }
        _ => name(email, id),
    }
}

/// A refusal that means someone tampered with the mailbox (not a key change to accept).
fn is_tampering(error: &Error) -> bool {
    matches!(
        error,
        Error::KeyForged(_) | Error::Forged | Error::NotForMe | Error::Replayed | Error::Malformed
    )
}

/// One JSON object for an entry: the message, or why it cannot be shown.
fn json_line(received: &Received) -> serde_json::Value {
    let entry = &received.entry;
    match &received.message {
        Ok(m) => serde_json::json!({
            "id": m.id,
            "seq": m.seq,
            "from": name(m.from_email.as_deref(), m.from),
            "unverified_claim": m.from_claimed_email.as_deref().filter(|_| m.from_email.is_none()),
            "from_id": m.from,
            "to": name(m.to_email.as_deref(), m.to),
            "to_id": m.to,
            "sent_at": rfc3339(m.sent_at),
            "stored_at": rfc3339(m.stored_at),
            "text": m.text,
            "outgoing": m.outgoing,
        }),
        Err(e) => serde_json::json!({
            "id": entry.id,
            "seq": entry.seq,
            "from": name(entry.from_email.as_deref(), entry.from),
            "from_id": entry.from,
            "to_id": entry.to,
            "stored_at": rfc3339(entry.created_at),
            "error": e.to_string(),
            "error_kind": error_kind(e),
        }),
    }
}

fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::KeyChanged(_) => "key_changed",
        Error::ContactChanged(_) => "contact_changed",
        Error::KeyForged(_) => "key_forged",
        Error::Replayed => "replayed",
        Error::Forged => "forged",
        Error::NotForMe => "not_for_me",
        Error::Malformed => "malformed",
        Error::UnsupportedType(_) => "unsupported_type",
        _ => "other",
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

fn human_time(time: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

async fn sessions(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let sessions = client.sessions().await?;
    println!(
        "  {:<36}  {:<20}  {:<23}  LAST USED",
        "SESSION", "DEVICE", "CREATED"
    );
    for s in sessions {
        println!(
            "{} {:<36}  {:<20}  {:<23}  {}",
            if s.current { "*" } else { " " },
            s.id,
            safe(s.device_name.as_deref().unwrap_or("-")),
            human_time(s.created_at),
            human_time(s.last_used_at)
        );
    }
    println!("(* this session)");
    Ok(())
}

async fn safety_number(context: &Context, email: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let numbers = client.safety_numbers(email).await.map_err(ui::warn)?;
    let who = safe(numbers.email.as_deref().unwrap_or(email));
    if let (Some(other), Some((_, number))) = (numbers.pending_user_id, &numbers.pending) {
        println!(
            "!!! The server now answers ANOTHER ACCOUNT ({other}) for {}, not trusted yet.\n\
             !!! Its safety number:\n\n    {}\n\n\
             !!! Only if {} reads you the same number, accept it: sealpost trust {}\n",
            safe(email),
            format_safety_number(number),
            safe(email),
            safe(email)
        );
    }
    if let Some((version, number)) = &numbers.pinned {
        println!(
            "Safety number of you and {who} (their key version {version}, the one you trust):\n\n    {}\n",
            format_safety_number(number)
        );
    }
    if let (None, Some((version, number))) = (numbers.pending_user_id, &numbers.pending) {
        println!(
            "!!! The server now hands out ANOTHER key for {who} (version {version}), not trusted yet.\n\
             !!! Its safety number:\n\n    {}\n\n\
             !!! Only if {who} reads you the same number, accept it: sealpost trust {who}\n",
            format_safety_number(number)
        );
    }
    println!("Compare it with {who} in person or over a call: if the numbers match, nobody sits between you.");
    Ok(())
}
