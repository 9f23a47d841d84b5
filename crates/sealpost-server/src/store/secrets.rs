//! Server secrets kept in the database (the token-signing key and the prelogin secret), shared
//! by every node on it.

use super::Store;

const INSERT_SECRET: &str =
    "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
const SELECT_SECRET: &str = "SELECT value FROM server_secrets WHERE name = $1";

impl Store {
    /// A server secret by name, made from `fresh` on first use; every node on this database gets
    /// the same one.
    pub async fn server_secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>, sqlx::Error> {
        on_write!(self, pool => {
            sqlx::query(INSERT_SECRET).bind(name).bind(&fresh).execute(pool).await?;
            sqlx::query_scalar(SELECT_SECRET).bind(name).fetch_one(pool).await
        })
    }
}
