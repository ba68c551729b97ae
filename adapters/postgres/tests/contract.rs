//! The store contract (`lockstep_core::store`), from the kit in
//! `lockstep_tokio::server::contract`, against PostgreSQL: each rule on a
//! store of its own (a fresh schema), with the default settings and with
//! one writer and one reader connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::contract::{check_retention, check_store};

/// Makes fresh stores synchronously, as the kit asks, on a multi-thread
/// runtime.
fn maker(url: String, config: PgConfig) -> impl FnMut() -> PgStore {
    let rt = tokio::runtime::Handle::current();
    move || {
        let (url, config) = (url.clone(), config.clone());
        tokio::task::block_in_place(|| rt.block_on(common::fresh(&url, config)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_store_contract() {
    let Some(url) = common::url() else { return };
    check_store(maker(url, PgConfig::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_one_connection_each_keeps_the_store_contract() {
    let Some(url) = common::url() else { return };
    let config = PgConfig {
        writers: 1,
        readers: 1,
        ..PgConfig::default()
    };
    check_store(maker(url, config)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_stores_keep_the_retention_rules() {
    let Some(url) = common::url() else { return };
    for retain in [2, 7, 100] {
        let config = PgConfig {
            retain,
            ..PgConfig::default()
        };
        check_retention(maker(url.clone(), config), retain).await;
    }
}
