//! What the SQLite store's own tests share: commands, reading a log back,
//! and database files in a per-process temporary directory.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{AppendEntry, ReadFrom, StoreCommand, StoreReply};
use lockstep_core::wire::Body;
use lockstep_sqlite::SqliteStore;
use lockstep_tokio::server::Store;

/// One append command: a message by alice per client message id, `ts` 1.
pub(crate) fn append(channel: &str, cmids: &[&str]) -> StoreCommand {
    StoreCommand::Append {
        channel: ChannelId::new(channel).unwrap(),
        entries: cmids
            .iter()
            .map(|cmid| AppendEntry::Message {
                author: UserId::new("alice").unwrap(),
                client_msg_id: ClientMsgId::new(*cmid).unwrap(),
                body: Body::text(*cmid),
                ts: 1,
            })
            .collect(),
        chain: lockstep_core::store::AppendChain::Start,
    }
}

/// The seqs of `channel`'s log, from the start (at most 100).
pub(crate) async fn seqs(s: &SqliteStore, channel: &str) -> Vec<u64> {
    let page = s
        .execute(StoreCommand::Read {
            channel: ChannelId::new(channel).unwrap(),
            from: ReadFrom::After(Seq(0)),
            limit: 100,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap();
    let StoreReply::Events(page) = page else {
        panic!("{page:?}")
    };
    page.events.iter().map(|e| e.seq().0).collect()
}

/// A fresh database path `name` in this process's temporary directory.
pub(crate) fn db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}
