//! Public keys: a user's key at a version, and rotation (PROTOCOL §5).

use uuid::Uuid;

use super::Store;

/// One key version of an account.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_version: i64,
    pub public_key: Vec<u8>,
    pub wrapped_secret_key: Option<Vec<u8>>,
}

/// A public view of an account at one key version.
#[derive(Debug)]
pub struct PublicUser {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub public_key: Vec<u8>,
    pub key_version: i64,
    pub deleted: bool,
}

/// How a user is looked up.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    Id(Uuid),
    Email(&'a str),
}

#[derive(sqlx::FromRow)]
struct PublicUserRow {
    id: Uuid,
    email: Option<String>,
    deleted_at: Option<i64>,
    public_key: Vec<u8>,
    key_version: i64,
}

impl From<PublicUserRow> for PublicUser {
    fn from(r: PublicUserRow) -> Self {
        PublicUser {
            user_id: r.id,
            email: r.email,
            public_key: r.public_key,
            key_version: r.key_version,
            deleted: r.deleted_at.is_some(),
        }
    }
}

/// The lookups of [`Store::public_user`], one statement each: `$1` is the id or the email, `$2`
/// the version where one is asked for.
macro_rules! public_user {
    ($filter:literal, $version:literal) => {
        concat!(
            "SELECT u.id, u.email, u.deleted_at, k.public_key, k.key_version FROM users u \
             JOIN user_keys k ON k.user_id = u.id WHERE ",
            $filter,
            " AND ",
            $version
        )
    };
}

/// The newest key of a live account; a deleted account is not found this way.
const NEWEST_BY_ID: &str = public_user!(
    "u.id = $1",
    "k.key_version = u.key_version AND u.deleted_at IS NULL"
);
const NEWEST_BY_EMAIL: &str = public_user!(
    "u.email = $1",
    "k.key_version = u.key_version AND u.deleted_at IS NULL"
);
/// A given version, deleted accounts included, so that what they sent still verifies.
const VERSION_BY_ID: &str = public_user!("u.id = $1", "k.key_version = $2");
const VERSION_BY_EMAIL: &str = public_user!("u.email = $1", "k.key_version = $2");

/// Every key version of a user, ascending; a deleted account's too (it keeps its public keys).
const SELECT_KEY_LIST: &str = "SELECT k.key_version, k.public_key, u.deleted_at FROM users u \
     JOIN user_keys k ON k.user_id = u.id WHERE u.id = $1 ORDER BY k.key_version";

/// A user's public keys, every version.
#[derive(Debug)]
pub struct KeyList {
    /// (key version, public key), oldest first.
    pub keys: Vec<(i64, Vec<u8>)>,
    pub deleted: bool,
}

#[derive(sqlx::FromRow)]
struct KeyListRow {
    key_version: i64,
    public_key: Vec<u8>,
    deleted_at: Option<i64>,
}

pub(super) const INSERT_KEY: &str = "INSERT INTO user_keys (user_id, key_version, public_key, \
     wrapped_secret_key, created_at) VALUES ($1, $2, $3, $4, $5)";
const ADVANCE_KEY_VERSION: &str = "UPDATE users SET key_version = $1 \
     WHERE id = $2 AND key_version = $3 AND deleted_at IS NULL";

impl Store {
    /// A user's key at `version` (the newest when `None`). Deleted accounts are found only by id
    /// and version (so that what they sent still verifies).
    pub async fn public_user(
        &self,
        by: UserRef<'_>,
        version: Option<i64>,
    ) -> Result<Option<PublicUser>, sqlx::Error> {
        let sql = match (by, version) {
            (UserRef::Id(_), None) => NEWEST_BY_ID,
            (UserRef::Email(_), None) => NEWEST_BY_EMAIL,
            (UserRef::Id(_), Some(_)) => VERSION_BY_ID,
            (UserRef::Email(_), Some(_)) => VERSION_BY_EMAIL,
        };
        let row: Option<PublicUserRow> = on!(self, pool => {
            let q = sqlx::query_as(sql);
            let q = match by {
                UserRef::Id(id) => q.bind(id),
                UserRef::Email(email) => q.bind(email),
            };
            let q = match version {
                Some(v) => q.bind(v),
                None => q,
            };
            q.fetch_optional(pool).await?
        });
        Ok(row.map(PublicUser::from))
    }

    /// Every key version of a user, oldest first; `None` if there is no such user.
    pub async fn key_list(&self, user_id: Uuid) -> Result<Option<KeyList>, sqlx::Error> {
        let rows: Vec<KeyListRow> = on!(self, pool => {
            sqlx::query_as(SELECT_KEY_LIST).bind(user_id).fetch_all(pool).await?
        });
        let deleted = rows.first().is_some_and(|r| r.deleted_at.is_some());
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(KeyList {
            keys: rows
                .into_iter()
                .map(|r| (r.key_version, r.public_key))
                .collect(),
            deleted,
        }))
    }

    /// Adds key version `version` (= newest + 1); `false` if `version` is not that.
    pub async fn rotate_key(
        &self,
        user_id: Uuid,
        version: i64,
        public_key: &[u8],
        wrapped_secret_key: &[u8],
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(ADVANCE_KEY_VERSION)
                .bind(version)
                .bind(user_id)
                .bind(version - 1)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            sqlx::query(INSERT_KEY)
                .bind(user_id)
                .bind(version)
                .bind(public_key)
                .bind(wrapped_secret_key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
