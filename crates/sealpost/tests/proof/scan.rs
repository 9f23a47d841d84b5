//! Byte scans: a secret (a canary) in each form it could be written in (raw, hex in either case,
//! base64url and standard base64 at each of the three alignments a longer encoded string could
//! put it at), searched for in artefacts (database files, a dump, logs).

use memchr::memmem;
use sealpost_crypto::b64;

/// A secret and the byte strings that would give it away.
pub struct Canary {
    pub name: String,
    pub forms: Vec<(&'static str, Vec<u8>)>,
}

impl Canary {
    pub fn bytes(name: impl Into<String>, bytes: &[u8]) -> Canary {
        assert!(
            bytes.len() >= 16,
            "a canary this short could match by chance"
        );
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut forms = vec![
            ("raw", bytes.to_vec()),
            ("hex", hex.clone().into_bytes()),
            ("HEX", hex.to_uppercase().into_bytes()),
        ];
        for (shift, url) in base64url_cores(bytes).into_iter().enumerate() {
            let std = url.replace('-', "+").replace('_', "/");
            let (url_name, std_name) = [
                ("base64url", "base64"),
                ("base64url+1", "base64+1"),
                ("base64url+2", "base64+2"),
            ][shift];
            if std != url {
                forms.push((std_name, std.into_bytes()));
            }
            forms.push((url_name, url.into_bytes()));
        }
        Canary {
            name: name.into(),
            forms,
        }
    }

    pub fn text(name: impl Into<String>, text: &str) -> Canary {
        Canary::bytes(name, text.as_bytes())
    }
}

/// The part of `bytes`' base64url that any encoding of a longer string holding `bytes` at a
/// position ≡ `shift` (mod 3) also holds: the characters that carry only bits of `bytes`.
fn base64url_cores(bytes: &[u8]) -> [String; 3] {
    [0, 1, 2].map(|shift| {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(bytes);
        let encoded = b64::encode(&padded);
        let start = (8 * shift).div_ceil(6);
        let end = 8 * padded.len() / 6;
        encoded[start..end].to_owned()
    })
}

/// Where a form of a canary was found.
pub struct Hit {
    pub canary: String,
    pub form: &'static str,
    pub artefact: String,
    pub count: usize,
}

/// Every form of every canary in `artefact`; answers the hits and how many (canary, form) pairs
/// were looked for.
pub fn scan(artefact: &str, haystack: &[u8], canaries: &[Canary]) -> (Vec<Hit>, usize) {
    let mut hits = Vec::new();
    let mut looked = 0;
    for canary in canaries {
        for (form, needle) in &canary.forms {
            looked += 1;
            let count = memmem::find_iter(haystack, needle).count();
            if count > 0 {
                hits.push(Hit {
                    canary: canary.name.clone(),
                    form,
                    artefact: artefact.to_owned(),
                    count,
                });
            }
        }
    }
    (hits, looked)
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} as {} in {} ({}×)",
            self.canary, self.form, self.artefact, self.count
        )
    }
}

#[test]
fn every_form_is_found_where_it_is_written() {
    let secret: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(200))
        .collect();
    let canary = Canary::bytes("k", &secret);
    for prefix in 0..6 {
        let mut longer = vec![0x5au8; prefix];
        longer.extend_from_slice(&secret);
        longer.extend_from_slice(b"tail");
        let encoded = b64::encode(&longer);
        let hex: String = longer.iter().map(|b| format!("{b:02X}")).collect();
        for text in [
            encoded.clone(),
            encoded.replace('-', "+").replace('_', "/"),
            hex,
        ] {
            let (hits, _) = scan("t", text.as_bytes(), std::slice::from_ref(&canary));
            assert!(!hits.is_empty(), "missed in {text} (prefix {prefix})");
        }
    }
    let forms = canary.forms.len();
    let (hits, looked) = scan("t", b"nothing to see here", &[canary]);
    assert!(hits.is_empty());
    assert_eq!(looked, forms);
}
