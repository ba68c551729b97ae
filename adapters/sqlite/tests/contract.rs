//! The store contract (`lockstep_core::store`), from the kit in
//! `lockstep_tokio::server::contract`, against the SQLite store: in memory
//! and on a file (whose commits go through the WAL, and whose reads go
//! through the reader connections).

use std::path::PathBuf;

use lockstep_sqlite::{SqliteConfig, SqliteStore};
use lockstep_tokio::server::contract::{check_retention, check_store};

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh database file per call, in a directory of this process that
/// goes with the closure.
fn fresh_file(tag: &str, config: SqliteConfig) -> impl FnMut() -> SqliteStore {
    let dir = std::env::temp_dir().join(format!("lockstep-sqlite-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir(dir);
    let mut n = 0;
    move || {
        n += 1;
        let path: PathBuf = dir.0.join(format!("{n}.db"));
        let _ = std::fs::remove_file(&path);
        SqliteStore::open_with(&path, config.clone())
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
    }
}

#[tokio::test]
async fn an_in_memory_database_keeps_the_store_contract() {
    check_store(|| {
        SqliteStore::in_memory().unwrap_or_else(|e| panic!("open in-memory sqlite: {e}"))
    })
    .await;
}

#[tokio::test]
async fn a_database_file_keeps_the_store_contract() {
    check_store(fresh_file("contract", SqliteConfig::default())).await;
}

#[tokio::test]
async fn a_database_file_whose_writer_serves_reads_keeps_the_store_contract() {
    let config = SqliteConfig {
        readers: 0,
        ..SqliteConfig::default()
    };
    check_store(fresh_file("contract-no-readers", config)).await;
}

#[tokio::test]
async fn small_databases_keep_the_retention_rules() {
    for retain in [2, 7, 100] {
        let config = SqliteConfig {
            retain,
            ..SqliteConfig::default()
        };
        let memory = config.clone();
        check_retention(
            || {
                SqliteStore::in_memory_with(memory.clone())
                    .unwrap_or_else(|e| panic!("open in-memory sqlite: {e}"))
            },
            retain,
        )
        .await;
        // A directory of its own per setting: the stores of one check may
        // still be closing while the next opens its files.
        check_retention(fresh_file(&format!("retention-{retain}"), config), retain).await;
    }
}
