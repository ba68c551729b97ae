//! The store contract (`lockstep_core::store`), from the kit in
//! `lockstep_tokio::server::contract`, against the SQLite store: in memory
//! and on a file (whose commits go through the WAL).

use lockstep_sqlite::SqliteStore;
use lockstep_tokio::server::contract::check_store;

#[tokio::test]
async fn an_in_memory_database_keeps_the_store_contract() {
    check_store(|| {
        SqliteStore::in_memory().unwrap_or_else(|e| panic!("open in-memory sqlite: {e}"))
    })
    .await;
}

#[tokio::test]
async fn a_database_file_keeps_the_store_contract() {
    let dir = std::env::temp_dir().join(format!("lockstep-sqlite-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0;
    check_store(|| {
        n += 1;
        let path = dir.join(format!("contract-{n}.db"));
        let _ = std::fs::remove_file(&path);
        SqliteStore::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
