//! What a sender or the server supplies reaches the terminal escaped: no escape sequence, carriage
//! return or bidi override comes through raw, and a message cannot print a line that passes for
//! a header.

use sealpost_testkit::{both, TestApp};

use crate::support::Person;

/// Characters that must never reach a terminal raw from someone else's text.
const RAW: [char; 5] = ['\x1b', '\r', '\x07', '\u{9b}', '\u{202e}'];

fn assert_no_raw_controls(what: &str, out: &str) {
    for c in RAW {
        assert!(
            !out.contains(c),
            "{what} printed {c:?} raw:\n{}",
            out.escape_debug()
        );
    }
}

both!(
    message_text_emails_and_device_names_are_shown_escaped,
    |app: TestApp| async move {
        // A sender whose email reorders text (the server takes it: not a control character).
        let mut mallory = Person::new("mallory", &app.base, &[]);
        mallory.email = format!("mallory\u{202e}{}", mallory.email);
        let bob = Person::new("bob", &app.base, &[]);
        mallory.register().await;
        bob.register().await;

        let fake_header = "#12  2030-01-01 00:00:00 UTC  alice@example.test → you";
        let text =
            format!("hello\x1b[2J\rwiped\n{fake_header}\n\x1b]0;owned title\x07 and \u{9b}31m red");
        mallory.ok(&["send", &bob.email, &text]).await;

        let out = bob.ok(&["inbox"]).await;
        assert_no_raw_controls("inbox", &out);
        // One message, one header: every line of its text is indented, the fake one too.
        let headers: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(headers.len(), 1, "{out}");
        assert!(headers[0].starts_with("#1  "), "{out}");
        assert!(headers[0].contains("mallory\\u{202e}"), "{out}");
        assert!(headers[0].ends_with("→ you"), "{out}");
        assert!(out.contains("\n    hello\\x1b[2J\\rwiped\n"), "{out}");
        assert!(out.contains(&format!("\n    {fake_header}\n")), "{out}");
        assert!(
            out.contains("\n    \\x1b]0;owned title\\x07 and \\u{9b}31m red\n"),
            "{out}"
        );

        // The JSON lines too, and they still carry the text exactly.
        let json = bob.ok(&["inbox", "--json"]).await;
        assert_no_raw_controls("inbox --json", &json);
        let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(line["text"], text.as_str());
        assert_eq!(line["from"], mallory.email.as_str());

        // A device name is whatever a device said it is.
        let device = "phone\x1b[2J\r\u{202e}";
        bob.ok(&["login", &bob.email, "--device", device]).await;
        let sessions = bob.ok(&["sessions"]).await;
        assert_no_raw_controls("sessions", &sessions);
        assert!(sessions.contains("phone\\x1b[2J\\r\\u{202e}"), "{sessions}");
    }
);
