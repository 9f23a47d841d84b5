//! For tests only (the `test-support` feature, which only the test kit turns on): raw statements
//! against the store, so that a test can look at or tamper with what the server stored, as the
//! thief of the disk or a malicious operator would. Server code cannot reach these.

use sqlx::Row as _;
use uuid::Uuid;

use super::{Db, Store};

/// A value to bind to a test's statement.
#[derive(Debug, Clone)]
pub enum Value {
    Uuid(Uuid),
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
}

/// Binds `$values` to `$q` in order.
macro_rules! bind_all {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                Value::Uuid(x) => q.bind(*x),
                Value::Int(x) => q.bind(*x),
                Value::Bytes(x) => q.bind(x.clone()),
                Value::Text(x) => q.bind(x.clone()),
            };
        }
        q
    }};
}

const SQLITE_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
const PG_TABLES: &str = "SELECT table_name::text FROM information_schema.tables \
     WHERE table_schema = 'public' ORDER BY table_name";

impl Store {
    /// Runs a statement; answers the rows it changed.
    pub async fn test_execute(&self, sql: &str, values: &[Value]) -> Result<u64, sqlx::Error> {
        on!(self, pool => {
            Ok(bind_all!(sqlx::query(sql), values).execute(pool).await?.rows_affected())
        })
    }

    /// Runs a query whose answer is one integer (a count, say).
    pub async fn test_scalar(&self, sql: &str, values: &[Value]) -> Result<i64, sqlx::Error> {
        on!(self, pool => bind_all!(sqlx::query_scalar(sql), values).fetch_one(pool).await)
    }

    /// Every row of every table as text, read through SQL: on SQLite each column as text, blobs
    /// as lowercase hex; on PostgreSQL each row's own text form (bytea as `\x` hex).
    pub async fn test_dump_text(&self) -> Result<String, sqlx::Error> {
        let mut out = String::new();
        match &self.db {
            Db::Sqlite(pool, _) => {
                let tables: Vec<String> = sqlx::query_scalar(SQLITE_TABLES).fetch_all(pool).await?;
                for table in tables {
                    let rows = sqlx::query(&format!("SELECT * FROM \"{table}\""))
                        .fetch_all(pool)
                        .await?;
                    for row in rows {
                        for (i, _) in row.columns().iter().enumerate() {
                            if let Ok(Some(t)) = row.try_get::<Option<String>, _>(i) {
                                out.push_str(&t);
                            } else if let Ok(Some(b)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                                out.extend(b.iter().map(|b| format!("{b:02x}")));
                            } else if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(i) {
                                out.push_str(&n.to_string());
                            }
                            out.push('|');
                        }
                        out.push('\n');
                    }
                }
            }
            Db::Postgres(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(PG_TABLES).fetch_all(pool).await?;
                for table in tables {
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
                            .fetch_all(pool)
                            .await?;
                    for r in rows {
                        out.push_str(&r);
                        out.push('\n');
                    }
                }
            }
        }
        Ok(out)
    }
}
