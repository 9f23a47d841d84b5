//! Upgrading a database that the old home-made migration runner made: its ledger
//! (`schema_migrations`) is carried into sqlx's once, nothing is applied twice, data stays, and
//! a second start changes nothing.

use sealpost_server::Store;
use sqlx::Connection as _;

use crate::helpers::PgDatabase;

const SQLITE: [&str; 3] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_recovery_tokens.sql"),
    include_str!("../../migrations/sqlite/0003_mailbox_rev.sql"),
];
const POSTGRES: [&str; 4] = [
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_recovery_tokens.sql"),
    include_str!("../../migrations/postgres/0003_mailbox_rev.sql"),
    include_str!("../../migrations/postgres/0004_messages_mailbox_fk.sql"),
];
/// What the old runner kept, as it made it.
const LEGACY_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// Brings the database up as the old runner did: every migration, its ledger, and a secret.
macro_rules! make_legacy {
    ($conn:expr, $migrations:expr) => {{
        let conn = &mut $conn;
        for (i, sql) in $migrations.iter().enumerate() {
            sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap();
            sqlx::raw_sql(LEGACY_LEDGER)
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)")
                .bind(i as i64 + 1)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('jwt', $1)")
            .bind(vec![7u8; 32])
            .execute(&mut *conn)
            .await
            .unwrap();
    }};
}

/// How many migrations a backend has now (the old ledger knew fewer).
fn migrations_now(backend: &str) -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/");
    std::fs::read_dir(format!("{dir}{backend}"))
        .unwrap()
        .count() as i64
}

async fn check_adopted(url: &str, backend: &str) {
    for _ in 0..2 {
        let store = Store::connect(url, 2)
            .await
            .expect("start on the old database");
        let scalar = |sql: &'static str| {
            let store = store.clone();
            async move { store.test_scalar(sql, &[]).await.unwrap() }
        };
        assert_eq!(
            scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").await,
            migrations_now(backend)
        );
        // The data is as it was: the secret the old version kept is still there, to be moved out
        // of the database when a server starts on it (keyfile).
        assert_eq!(
            store.legacy_secrets().await.unwrap(),
            vec![("jwt".to_owned(), vec![7u8; 32])]
        );
        store.close().await;
    }
}

#[tokio::test]
async fn an_old_sqlite_database_is_adopted_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    make_legacy!(conn, SQLITE);
    conn.close().await.unwrap();
    check_adopted(&url, "sqlite").await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let legacy: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(legacy, 0, "the old ledger is dropped once carried over");
}

#[tokio::test]
async fn an_old_postgres_database_is_adopted_once() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    make_legacy!(conn, POSTGRES);
    conn.close().await.unwrap();
    check_adopted(&db.url, "postgres").await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let legacy: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'schema_migrations'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(legacy, 0, "the old ledger is dropped once carried over");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn nodes_starting_together_on_postgres_migrate_once() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let starts = (0..4).map(|_| Store::connect(&db.url, 2));
    let stores = futures_util::future::join_all(starts).await;
    for store in stores {
        let store = store.expect("every node starts");
        assert_eq!(
            store
                .test_scalar("SELECT COUNT(*) FROM _sqlx_migrations", &[])
                .await
                .unwrap(),
            migrations_now("postgres")
        );
        store.close().await;
    }
}
