//! Migrations: numbered SQL files per backend (`migrations/sqlite`, `migrations/postgres`),
//! embedded at build time by `sqlx::migrate!` and applied at start-up. On PostgreSQL sqlx takes
//! an advisory lock first, so nodes that start together migrate once, one after the other.
//!
//! Databases made before sqlx ran the migrations kept their own ledger, `schema_migrations`; it is
//! carried into sqlx's `_sqlx_migrations` once, under a lock, so that an upgraded server neither
//! applies a migration twice nor refuses to start.

use anyhow::Context as _;
use sqlx::migrate::{Migrate as _, Migrator};

use super::{Db, Store};

pub(super) static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
pub(super) static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Whether the old ledger is there; the dialects differ.
const HAS_LEGACY_LEDGER_SQLITE: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'";
const HAS_LEGACY_LEDGER_PG: &str =
    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'";
/// Nodes starting together take turns at the carrying-over (the key the old runner used).
const LOCK_PG: &str = "SELECT pg_advisory_xact_lock(7301)";
const LEGACY_VERSIONS: &str = "SELECT version FROM schema_migrations ORDER BY version";
const RECORD_APPLIED: &str = "INSERT INTO _sqlx_migrations (version, description, success, \
     checksum, execution_time) VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING";
const DROP_LEGACY_LEDGER: &str = "DROP TABLE schema_migrations";

impl Store {
    pub(super) async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match &self.db {
            Db::Sqlite(..) => &SQLITE,
            Db::Postgres(_) => &POSTGRES,
        };
        self.adopt_legacy_ledger(migrator)
            .await
            .context("carrying the old migration ledger over")?;
        on!(self, pool => migrator.run(pool).await)
            .with_context(|| format!("migrating the {} database", self.backend().name()))?;
        Ok(())
    }

    /// Records in sqlx's ledger the migrations the old runner applied, then drops its ledger.
    async fn adopt_legacy_ledger(&self, migrator: &Migrator) -> anyhow::Result<()> {
        let has_legacy = match &self.db {
            Db::Sqlite(..) => HAS_LEGACY_LEDGER_SQLITE,
            Db::Postgres(_) => HAS_LEGACY_LEDGER_PG,
        };
        on!(self, pool => {
            let mut tx = pool.begin().await?;
            if self.backend() == super::Backend::Postgres {
                sqlx::query(LOCK_PG).execute(&mut *tx).await?;
            }
            let legacy: i64 = sqlx::query_scalar(has_legacy).fetch_one(&mut *tx).await?;
            if legacy == 0 {
                return Ok(());
            }
            tx.ensure_migrations_table().await?;
            let applied: Vec<i64> = sqlx::query_scalar(LEGACY_VERSIONS).fetch_all(&mut *tx).await?;
            for version in applied {
                let m = migrator
                    .iter()
                    .find(|m| m.version == version)
                    .with_context(|| format!("the database has migration {version}, which this server does not know: is it older than the database?"))?;
                sqlx::query(RECORD_APPLIED)
                    .bind(m.version)
                    .bind(&*m.description)
                    .bind(&*m.checksum)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(DROP_LEGACY_LEDGER).execute(&mut *tx).await?;
            tx.commit().await?;
            tracing::info!(backend = self.backend().name(), "carried the old migration ledger over to sqlx's");
        });
        Ok(())
    }
}
