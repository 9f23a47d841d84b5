//! Hand-written JSON for the answers made of mailbox entries: the page of `GET /v1/messages` and
//! the stream's `message` frame. They are most of what the server writes, and serde_json spent
//! most of an inbox request scanning base64 for characters to escape. Every value written here is
//! an integer or text that cannot need escaping (UUIDs, base64url, RFC 3339), so nothing is
//! scanned: base64 goes straight into the answer's buffer. The schema is `MessageWire`; a test
//! checks that both writers give exactly what serde_json gives for it.

use sealpost_crypto::b64;
use uuid::Uuid;

use crate::store::{Cursor, Entry};

/// About how many bytes an entry takes, beside its base64.
const ENTRY_OVERHEAD: usize = 260;

/// The body of a page: `{"messages":[…],"next_after":N}` (or `next_before`).
pub fn page(entries: &[Entry], cursor: Cursor) -> String {
    let size: usize = entries
        .iter()
        .map(|e| ENTRY_OVERHEAD + e.ciphertext.len() * 4 / 3)
        .sum();
    let mut out = String::with_capacity(size + 64);
    out.push_str("{\"messages\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        entry(&mut out, e);
    }
    let last = entries.last().map(|e| e.seq);
    let (name, next) = match cursor {
        Cursor::After(a) => ("],\"next_after\":", last.unwrap_or(a)),
        Cursor::Before(b) => ("],\"next_before\":", last.unwrap_or(b)),
    };
    out.push_str(name);
    int(&mut out, next);
    out.push('}');
    out
}

/// A stream frame: `{"type":"message","message":{…}}`.
pub fn message_frame(e: &Entry) -> String {
    let mut out = String::with_capacity(ENTRY_OVERHEAD + 32 + e.ciphertext.len() * 4 / 3);
    out.push_str("{\"type\":\"message\",\"message\":");
    entry(&mut out, e);
    out.push('}');
    out
}

/// One entry, fields in the order of `MessageWire`.
fn entry(out: &mut String, e: &Entry) {
    out.push_str("{\"id\":\"");
    uuid(out, e.id);
    out.push_str("\",\"seq\":");
    int(out, e.seq);
    out.push_str(",\"from\":\"");
    uuid(out, e.sender);
    out.push_str("\",\"to\":\"");
    uuid(out, e.recipient);
    out.push_str("\",\"ciphertext\":\"");
    b64::encode_into(&e.ciphertext, out);
    out.push_str("\",\"key_version\":");
    int(out, e.key_version);
    out.push_str(",\"sender_key_version\":");
    int(out, e.sender_key_version);
    out.push_str(",\"created_at\":\"");
    rfc3339_into(out, e.created_at);
    out.push_str("\"}");
}

fn uuid(out: &mut String, id: Uuid) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push_str(id.hyphenated().encode_lower(&mut buf));
}

fn int(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// The last millisecond of 9999-12-31, the last instant RFC 3339's four-digit year can show.
const MAX_MS: i64 = 253_402_300_799_999;

/// Appends `ms` (Unix milliseconds, UTC) as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Times outside years
/// 1970..=9999 (the server only writes its own clock's) are shown as the epoch.
pub fn rfc3339_into(out: &mut String, ms: i64) {
    let ms = if (0..=MAX_MS).contains(&ms) { ms } else { 0 };
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    digits(&mut buf[0..4], year);
    digits(&mut buf[5..7], month);
    digits(&mut buf[8..10], day);
    digits(&mut buf[11..13], secs / 3600);
    digits(&mut buf[14..16], secs / 60 % 60);
    digits(&mut buf[17..19], secs % 60);
    digits(&mut buf[20..23], ms_of_day % 1000);
    // Every byte is an ASCII digit or one of `-T:.Z`.
    out.extend(buf.iter().map(|&b| b as char));
}

/// Writes `n` (non-negative, fits) as exactly `slot.len()` decimal digits.
fn digits(slot: &mut [u8], mut n: i64) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (non-negative), by eras of
/// 400 years (146,097 days), the way H. Hinnant's `civil_from_days` does it.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{MessagePage, MessageWire};
    use proptest::prelude::*;

    fn by_time(ms: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        t.format(&fmt).unwrap()
    }

    fn stamp(ms: i64) -> String {
        let mut s = String::new();
        rfc3339_into(&mut s, ms);
        s
    }

    #[test]
    fn known_instants() {
        assert_eq!(stamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(stamp(1_795_780_800_123), "2026-11-27T12:00:00.123Z");
        assert_eq!(stamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(stamp(MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(stamp(MAX_MS + 1), "1970-01-01T00:00:00.000Z");
        assert_eq!(stamp(-1), "1970-01-01T00:00:00.000Z");
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..600),
            any::<i64>(),
            any::<i64>(),
            0..=MAX_MS,
        )
            .prop_map(
                |(id, from, to, seq, ciphertext, kv, skv, created_at)| Entry {
                    id: Uuid::from_bytes(id),
                    mailbox: Uuid::from_bytes(to),
                    seq,
                    sender: Uuid::from_bytes(from),
                    recipient: Uuid::from_bytes(to),
                    ciphertext,
                    key_version: kv,
                    sender_key_version: skv,
                    created_at,
                },
            )
    }

    proptest! {
        #[test]
        fn timestamps_match_the_time_crate(ms in 0..=MAX_MS) {
            prop_assert_eq!(stamp(ms), by_time(ms));
        }

        #[test]
        fn pages_match_serde(entries in proptest::collection::vec(arb_entry(), 0..5),
                             after in any::<bool>(), bound in any::<i64>()) {
            let cursor = if after { Cursor::After(bound) } else { Cursor::Before(bound) };
            let messages = entries.iter().map(MessageWire::from).collect();
            let expected = serde_json::to_string(&MessagePage::new(messages, &entries, cursor)).unwrap();
            prop_assert_eq!(page(&entries, cursor), expected);
        }

        #[test]
        fn frames_match_serde(e in arb_entry()) {
            let expected = serde_json::json!({"type": "message", "message": MessageWire::from(&e)});
            let got: serde_json::Value = serde_json::from_str(&message_frame(&e)).unwrap();
            prop_assert_eq!(got, expected);
            let prefix = r#"{"type":"message","message":{"id":"#;
            prop_assert!(message_frame(&e).starts_with(prefix), "{}", message_frame(&e));
        }
    }
}
