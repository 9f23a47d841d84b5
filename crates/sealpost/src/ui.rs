//! The terminal side of the client: passwords and the recovery key (a prompt that does not echo,
//! or `SEALPOST_PASSWORD`, `SEALPOST_NEW_PASSWORD`, `SEALPOST_RECOVERY_KEY`), confirmations, a
//! progress indicator while the password's keys are derived, the loud key-change warning, error
//! reports, and [`safe`], which every string from a server or a sender goes through before it is
//! printed.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sealpost_client::{format_safety_number, Client, Error, KdfProgress, KeyChange};
use sealpost_proto::sync::lock;
use zeroize::Zeroizing;

/// A password, wiped from memory when dropped.
pub type Password = Zeroizing<String>;

/// The password for `what` ("alice@example.com"): `SEALPOST_PASSWORD`, else a prompt on the
/// terminal that does not echo. With `confirm`, the prompt asks twice.
pub fn password(what: &str, confirm: bool) -> anyhow::Result<Password> {
    ask_password(
        &format!("Password for {what}: "),
        "SEALPOST_PASSWORD",
        confirm,
    )
}

/// The current password, for a password change: `SEALPOST_PASSWORD`, else a prompt.
pub fn current_password(what: &str) -> anyhow::Result<Password> {
    ask_password(
        &format!("Current password for {what}: "),
        "SEALPOST_PASSWORD",
        false,
    )
}

/// A new password: `SEALPOST_NEW_PASSWORD`, else a prompt that asks twice.
pub fn new_password(what: &str) -> anyhow::Result<Password> {
    ask_password(
        &format!("New password for {what}: "),
        "SEALPOST_NEW_PASSWORD",
        true,
    )
}

/// `variable` if it is set, else a prompt without echo (twice with `confirm`).
fn ask_password(prompt: &str, variable: &str, confirm: bool) -> anyhow::Result<Password> {
    if let Ok(password) = std::env::var(variable) {
        return Ok(Zeroizing::new(password));
    }
    let first = prompt_secret(prompt, variable)?;
    if confirm {
        let again = prompt_secret("The same password again: ", variable)?;
        if again.as_str() != first.as_str() {
            bail!("the two passwords differ");
        }
    }
    if first.as_str().is_empty() {
        bail!("an empty password is not a password");
    }
    Ok(first)
}

/// The recovery key's text: `SEALPOST_RECOVERY_KEY`, else a prompt that does not echo (it opens
/// the account like the password does). A typo at the prompt is told at once, and asked again.
pub fn recovery_key() -> anyhow::Result<Zeroizing<String>> {
    const VARIABLE: &str = "SEALPOST_RECOVERY_KEY";
    if let Ok(text) = std::env::var(VARIABLE) {
        return Ok(Zeroizing::new(text));
    }
    let mut tries = 0;
    loop {
        let text = prompt_secret("Recovery key (14 groups of 4): ", VARIABLE)?;
        match sealpost_crypto::RecoveryKey::parse(&text) {
            Ok(_) => return Ok(text),
            Err(e) if tries < 2 => eprintln!("{e}; try again"),
            Err(e) => return Err(sealpost_client::Error::from(e).into()),
        }
        tries += 1;
    }
}

/// Asks the user to type `email` to confirm something that cannot be undone; anything else, or
/// nothing at all, is a no.
pub fn confirmed_by_typing(email: &str, what: &str) -> anyhow::Result<bool> {
    eprint!("{what}\nType {email} to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the confirmation; pass --yes to confirm in a script")?;
    Ok(sealpost_client::normalize_email(&line) == email)
}

fn prompt_secret(prompt: &str, variable: &str) -> anyhow::Result<Zeroizing<String>> {
    let text = rpassword::prompt_password(prompt).with_context(|| {
        format!("cannot read from the terminal; set {variable} to give it in a script")
    })?;
    Ok(Zeroizing::new(text))
}

/// Shows "deriving keys… 0.8 s" on standard error while the password's keys are derived (one
/// line when standard error is not a terminal).
pub fn show_kdf_progress(client: &Client) {
    let spinner: Mutex<Option<Spinner>> = Mutex::new(None);
    client.set_kdf_observer(move |progress| {
        let mut spinner = lock(&spinner);
        match progress {
            KdfProgress::Started => *spinner = Some(Spinner::start()),
            KdfProgress::Finished(elapsed) => {
                if let Some(s) = spinner.take() {
                    s.stop(elapsed);
                }
            }
        }
    });
}

struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    terminal: bool,
}

impl Spinner {
    fn start() -> Spinner {
        let terminal = std::io::stderr().is_terminal();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = if terminal {
            let stop = Arc::clone(&stop);
            Some(std::thread::spawn(move || {
                let started = Instant::now();
                let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    eprint!(
                        "\r{} deriving keys from the password… {:.1} s",
                        frames[i % frames.len()],
                        started.elapsed().as_secs_f64()
                    );
                    let _ = std::io::stderr().flush();
                    i += 1;
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            }))
        } else {
            eprintln!("deriving keys from the password…");
            None
        };
        Spinner {
            stop,
            thread,
            terminal,
        }
    }

    fn stop(mut self, elapsed: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        if self.terminal {
            eprintln!(
                "\r✓ derived keys from the password in {:.1} s          ",
                elapsed.as_secs_f64()
            );
        }
    }
}

/// `text` as it may reach a terminal: every control character (escape sequences, carriage
/// returns, newlines, tabs, C1 codes) and every character that reorders or hides text (bidi
/// overrides, zero-width joiners' kin) shown as an escape (`\x1b`, `\r`, `\n`, `\u{202e}`),
/// never interpreted. Whatever a server or a sender supplied (message text, emails, device names,
/// error messages) is printed through this, so it cannot move the cursor, clear the screen or
/// start a line of its own.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if unsafe_char(c) && u32::from(c) < 0x80 => {
                let _ = write!(shown, "\\x{:02x}", u32::from(c));
            }
            c if unsafe_char(c) => {
                let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
            }
            c => shown.push(c),
        }
    }
    Cow::Owned(shown)
}

/// A JSON value as one line that a terminal shows as it is: serde_json escapes C0 controls
/// itself; the other characters [`safe`] escapes become `\uXXXX` too (valid JSON, the same
/// string once parsed).
pub fn safe_json(value: &serde_json::Value) -> String {
    let line = value.to_string();
    if !line.chars().any(unsafe_char) {
        return line;
    }
    let mut shown = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if unsafe_char(c) {
            // Outside a string JSON is ASCII without controls, so `c` is inside one.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(shown, "\\u{unit:04x}");
            }
        } else {
            shown.push(c);
        }
    }
    shown
}

/// What [`safe`] escapes: controls (C0, DEL, C1), the bidi controls that reorder a line, line
/// and paragraph separators, and invisible characters that can hide or fake text.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// The loud warning of a key change (PROTOCOL §6).
pub fn key_change_warning(change: &KeyChange) -> String {
    let who = change
        .email
        .as_deref()
        .map(|email| safe(email).into_owned())
        .unwrap_or_else(|| change.user_id.to_string());
    let line = "!".repeat(72);
    format!(
        "{line}\n\
         !!! WARNING: the key of {who} has CHANGED.\n\
         !!! Either {who} has a new device or key, or someone (the server?) is trying to\n\
         !!! read your messages. Nothing was sealed to the new key, and nothing it signed is shown.\n\
         !!! Compare this safety number with {who}, in person or over a call:\n\
         !!!\n\
         !!!     {}\n\
         !!!\n\
         !!! Only if it matches, accept the new key with:  sealpost trust {who}\n\
         {line}",
        format_safety_number(&change.safety_number)
    )
}

/// Prints an error for a person: a key change loudly, anything else on one line (through
/// [`safe`]: a server's error message is the server's text).
pub fn report(error: &anyhow::Error) {
    match error.downcast_ref::<sealpost_client::Error>() {
        Some(sealpost_client::Error::KeyChanged(change)) => {
            eprintln!("{}", key_change_warning(change))
        }
        // The SDK's messages already name their cause in a sentence.
        Some(sdk) => eprintln!("error: {}", safe(&sdk.to_string())),
        None => eprintln!("error: {}", safe(&format!("{error:#}"))),
    }
}

/// Says loudly, before the error is reported, what a contact change or a forged key means.
pub fn warn(error: Error) -> anyhow::Error {
    let line = "!".repeat(72);
    match &error {
        Error::ContactChanged(change) => eprintln!(
            "{line}\n\
             !!! WARNING: the account behind {email} has CHANGED.\n\
             !!! Either {email} was deleted and registered again, or someone (the server?) is\n\
             !!! trying to read your messages. Nothing was sent to the new account.\n\
             !!! Compare this safety number with {email}, in person or over a call:\n\
             !!!\n\
             !!!     {}\n\
             !!!\n\
             !!! Only if it matches, accept the new account with:  sealpost trust {email}\n\
             {line}",
            format_safety_number(&change.safety_number),
            email = safe(&change.email),
        ),
        Error::KeyForged(forgery) => eprintln!(
            "{line}\n\
             !!! FORGED KEY: the server offers a key for {} that cannot be theirs.\n\
             !!! Nothing was sealed to it. This is not a key change to accept: do not trust it;\n\
             !!! tell the server's operator, and compare safety numbers with your contact.\n\
             {line}",
            safe(
                &forgery
                    .email
                    .clone()
                    .unwrap_or_else(|| forgery.user_id.to_string())
            ),
        ),
        _ => {}
    }
    error.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn controls_are_shown_not_sent() {
        assert_eq!(safe("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert!(matches!(safe("plain"), Cow::Borrowed(_)));
        assert_eq!(
            safe("a\x1b[2Jb\rc\nd\te\x7f\u{9b}f"),
            "a\\x1b[2Jb\\rc\\nd\\te\\x7f\\u{9b}f"
        );
        assert_eq!(safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(safe("zero\u{200b}width"), "zero\\u{200b}width");
    }

    #[test]
    fn json_stays_json_and_shows_no_control() {
        let text = "a\x1b[2J\r\n\u{9b}\u{202e}z";
        let line = safe_json(&serde_json::json!({ "text": text }));
        assert!(!line.chars().any(unsafe_char), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["text"], text);
    }
}
