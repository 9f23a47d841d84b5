//! The server's own secrets (the token-signing key and the prelogin secret), kept **outside the
//! database** that holds accounts and mailboxes (PROTOCOL 1.1 §4.3): a copy of the database alone
//! must not let anyone mint a token.
//!
//! Where they come from, in order: `--jwt-secret` / `--prelogin-secret` (or their environment
//! variables); else the secrets file (`--secrets-file`, by default on SQLite a file beside the
//! database), made on first start, readable only by the server's user. On PostgreSQL, where many
//! nodes share one database, there is no default: every node must be given the same file or the
//! same two secrets. Secrets that an older version kept in the database are moved to the file,
//! and deleted from the database, once.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::ServeArgs;
use crate::store::{Backend, Store};
use crate::tokens::random_secret;

/// The two secrets, wiped on drop.
pub(crate) struct ServerSecrets {
    pub jwt: Zeroizing<Vec<u8>>,
    pub prelogin: Zeroizing<Vec<u8>>,
}

/// The secrets file: hex, so that an operator can read and copy it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    jwt: String,
    prelogin: String,
}

impl Drop for FileFormat {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.jwt);
        zeroize::Zeroize::zeroize(&mut self.prelogin);
    }
}

/// Where the secrets file is, if there is to be one.
pub fn secrets_path(config: &ServeArgs) -> Option<PathBuf> {
    if let Some(path) = &config.secrets_file {
        return Some(path.clone());
    }
    let url = config.database.as_str();
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(format!("{path}.secrets")))
}

/// Loads (or makes, or moves out of the database) the server's secrets.
pub(crate) async fn load(config: &ServeArgs, store: &Store) -> anyhow::Result<ServerSecrets> {
    let given = (
        config.jwt_secret.as_ref().map(|s| s.bytes().to_vec()),
        config.prelogin_secret.as_ref().map(|s| s.bytes().to_vec()),
    );
    let secrets = match (given, secrets_path(config)) {
        ((Some(jwt), Some(prelogin)), _) => ServerSecrets {
            jwt: Zeroizing::new(jwt),
            prelogin: Zeroizing::new(prelogin),
        },
        ((jwt, prelogin), Some(path)) => {
            let mut from_file = match read(&path)? {
                Some(found) => found,
                None => create(&path, store).await?,
            };
            if let Some(jwt) = jwt {
                from_file.jwt = Zeroizing::new(jwt);
            }
            if let Some(prelogin) = prelogin {
                from_file.prelogin = Zeroizing::new(prelogin);
            }
            from_file
        }
        (_, None) => bail!(
            "the server's secrets must live outside the {} database: give every node the same \
             --secrets-file PATH (made on first start if missing), or both SEALPOST_JWT_SECRET \
             and SEALPOST_PRELOGIN_SECRET (64+ hex digits each)",
            store.backend().name()
        ),
    };
    // Whatever an older version kept in the database goes now (it was moved, or is overridden).
    let removed = store.delete_legacy_secrets().await?;
    if removed > 0 {
        tracing::warn!(
            removed,
            "deleted the server secrets that the database held (they live outside it now)"
        );
    }
    Ok(secrets)
}

/// Reads the secrets file, if it exists; refuses one that others can read.
fn read(path: &Path) -> anyhow::Result<Option<ServerSecrets>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} can be read by other users (mode {:o}): `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    let file: FileFormat = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Sealpost secrets file", path.display()))?;
    Ok(Some(ServerSecrets {
        jwt: hex_secret(&file.jwt, "jwt", path)?,
        prelogin: hex_secret(&file.prelogin, "prelogin", path)?,
    }))
}

fn hex_secret(hex: &str, name: &str, path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    crate::config::HexSecret::parse(hex)
        .map(|s| Zeroizing::new(s.bytes().to_vec()))
        .map_err(|e| anyhow::anyhow!("{}: the {name} secret: {e}", path.display()))
}

/// Makes the secrets file: the secrets the database held, if any, or fresh ones. Written to a
/// temporary file created 0600, synced, then renamed into place.
async fn create(path: &Path, store: &Store) -> anyhow::Result<ServerSecrets> {
    let held = store.legacy_secrets().await?;
    let take = |name: &str| {
        held.iter()
            .find(|(n, v)| n == name && v.len() >= 32)
            .map(|(_, v)| Zeroizing::new(v.clone()))
            .unwrap_or_else(|| Zeroizing::new(random_secret()))
    };
    let secrets = ServerSecrets {
        jwt: take("jwt"),
        prelogin: take("prelogin"),
    };
    let file = FileFormat {
        jwt: hex(&secrets.jwt),
        prelogin: hex(&secrets.prelogin),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&file)?);
    let tmp = path.with_extension("secrets.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot create {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    if held.is_empty() {
        tracing::info!(path = %path.display(), "made the server's secrets file");
    } else {
        tracing::warn!(path = %path.display(), "moved the server's secrets out of the database into this file");
    }
    if store.backend() == Backend::Postgres {
        tracing::warn!(path = %path.display(), "every node on this database must use this same secrets file");
    }
    Ok(secrets)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_secrets_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealpost.db.secrets");
        let file = FileFormat {
            jwt: hex(&[7; 32]),
            prelogin: hex(&[9; 32]),
        };
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read(&path)
                .err()
                .unwrap_or_else(|| panic!("mode {mode:o} was read"));
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secrets = read(&path).unwrap().unwrap();
        assert_eq!((secrets.jwt[0], secrets.prelogin[0]), (7, 9));
    }
}
