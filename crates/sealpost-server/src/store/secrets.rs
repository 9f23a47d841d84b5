//! Server secrets that an older version kept in the database. They live outside it now
//! (`keyfile`); these methods move them out once and delete them.

use super::Store;

const SELECT_SECRETS: &str = "SELECT name, value FROM server_secrets ORDER BY name";
const DELETE_SECRETS: &str = "DELETE FROM server_secrets";

impl Store {
    /// The secrets the database still holds, by name.
    pub async fn legacy_secrets(&self) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
        on!(self, pool => sqlx::query_as(SELECT_SECRETS).fetch_all(pool).await)
    }

    /// Deletes them; answers how many there were.
    pub async fn delete_legacy_secrets(&self) -> Result<u64, sqlx::Error> {
        on_write!(self, pool => {
            Ok(sqlx::query(DELETE_SECRETS).execute(pool).await?.rows_affected())
        })
    }
}
