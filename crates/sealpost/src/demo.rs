//! `sealpost demo`: a server in this process over a temporary SQLite file, and Alice writing to
//! Bob through the SDK, showing each side, what the server stored, the safety number, and that
//! the database file holds no plaintext.

use anyhow::{bail, Context as _};
use sealpost_client::{format_safety_number, Client, MemoryKeystore, RegisterOptions};
use sealpost_server::{ServeArgs, Server, Store};

const TEXT: &str = "Hello, Bob!";

pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let db = dir.path().join("demo.db");
    let mut args = ServeArgs::defaults();
    // INTERACTIVE limits, so that the demo is quick; a real server hands out MODERATE.
    args.kdf_opslimit = 2;
    args.kdf_memlimit = 67_108_864;
    args.database = format!("sqlite://{}", db.display()).into();
    args.listen = ([127, 0, 0, 1], 0).into();
    let server = Server::bind(args).await?.spawn()?;
    let base = format!("http://{}", server.addr());
    println!("== Server: {base}, storing into {}\n", db.display());

    let result = exchange(&base, &server.state().store, &db).await;

    let _ = server.stop(std::time::Duration::from_secs(10)).await;
    result
}

async fn exchange(base: &str, store: &Store, db: &std::path::Path) -> anyhow::Result<()> {
    let alice = Client::new(base, MemoryKeystore::new());
    let bob = Client::new(base, MemoryKeystore::new());
    let options = RegisterOptions {
        recovery_key: false,
        device_name: Some("demo".into()),
    };
    println!("== Registering (each client derives two keys from its password: the server gets");
    println!("   only an auth key, and key pairs made and wrapped on the client)");
    let a = alice
        .register(
            "alice@example.com",
            "alice's demo password",
            options.clone(),
        )
        .await?;
    let b = bob
        .register("bob@example.com", "bob's demo password", options)
        .await?;
    println!("   alice@example.com  user id {}", a.user_id);
    println!("   bob@example.com    user id {}\n", b.user_id);

    println!("== Alice (sealing on her side, to Bob's key and with her own for her sender copy)");
    let sent = alice.send("bob@example.com", TEXT).await?;
    println!(
        "   sends {TEXT:?} → stored as entry #{} of Bob's mailbox\n",
        sent.seq
    );

    println!("== What the server stored (the row, read back from the database file)");
    let entry = store
        .entry(sent.id)
        .await?
        .context("the server did not store the message")?;
    let encoded = sealpost_crypto::b64::encode(&entry.ciphertext);
    println!(
        "   ciphertext: {} bytes, base64url {}… (sealed to key version {}, boxed with version {})\n",
        entry.ciphertext.len(),
        &encoded[..48.min(encoded.len())],
        entry.key_version,
        entry.sender_key_version
    );

    println!("== Bob (opening with his own key pair, checking it is Alice's by her pinned key)");
    let page = bob.fetch(0, None).await?;
    let received = page.messages.first().context("Bob's mailbox is empty")?;
    let message = received
        .message
        .as_ref()
        .map_err(|e| anyhow::anyhow!("Bob cannot open it: {e}"))?;
    println!(
        "   #{} from {}: {:?}",
        message.seq,
        message.from_email.as_deref().unwrap_or("?"),
        message.text
    );
    println!("   checked: sealed for Bob, made by Alice's key, addressed to Bob, not a replay\n");
    if message.text != TEXT {
        bail!("Bob read {:?}, not {TEXT:?}", message.text);
    }

    println!("== Alice's sender copy, in her own mailbox");
    let copies = alice.fetch(0, None).await?;
    let copy = copies.messages.first().context("no sender copy")?;
    let copy = copy
        .message
        .as_ref()
        .map_err(|e| anyhow::anyhow!("Alice cannot open her copy: {e}"))?;
    println!(
        "   #{} to {}: {:?}\n",
        copy.seq,
        copy.to_email.as_deref().unwrap_or("?"),
        copy.text
    );

    let by_alice = alice.safety_numbers("bob@example.com").await?;
    let by_bob = bob.safety_numbers("alice@example.com").await?;
    let (Some((_, number)), Some((_, same))) = (&by_alice.pinned, &by_bob.pinned) else {
        bail!("no safety number");
    };
    println!("== Safety number (Alice and Bob compare it out of band; both compute the same)");
    println!("   {}", format_safety_number(number));
    println!("   Alice's and Bob's match: {}\n", number == same);
    if number != same {
        bail!("the two sides compute different safety numbers");
    }

    println!("== Scanning the database files for the plaintext {TEXT:?}");
    let mut leaked = false;
    for suffix in ["", "-wal"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::read(&path) {
            Ok(bytes) => {
                let found = bytes.windows(TEXT.len()).any(|w| w == TEXT.as_bytes());
                leaked |= found;
                println!(
                    "   {} ({} bytes): {}",
                    path.display(),
                    bytes.len(),
                    if found { "FOUND" } else { "not found" }
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("   {}: no such file", path.display());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    if leaked {
        bail!("the plaintext is in the database file");
    }
    println!("\nThe server stored and relayed only ciphertext.");
    Ok(())
}
