//! Retention as SQLite keeps it (issue 16, item 6), beyond what the
//! contract kit checks: dedupe memory bounded to the newest messages, age
//! retention by the background sweep (contiguous even when stamps are
//! out of order, as clocks of several processes can be), and what
//! PostgreSQL's text cannot hold (NUL) round-trips in client message ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{
    AppendEntry, AppendOutcome, Existing, ReadFrom, StoreCommand, StoreReply,
};
use lockstep_core::wire::{Body, LogEvent};
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::Store;

/// The seqs an append appended (empty: a duplicate).
async fn appended(s: &PgStore, channel: &str, cmid: &str) -> Vec<u64> {
    let Ok(StoreReply::Appended(o)) = s.execute(common::append(channel, &[cmid])).await else {
        panic!("{cmid}")
    };
    o.iter()
        .filter_map(AppendOutcome::appended)
        .map(|e| e.seq().0)
        .collect()
}

async fn count(side: &tokio_postgres::Client, sql: &str) -> i64 {
    side.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn dedupe_memory_keeps_the_newest_messages() {
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema();
    let config = PgConfig {
        schema: schema.clone(),
        remember: 3,
        retain: 2,
        ..PgConfig::default()
    };
    let s = PgStore::connect(&url, config).await.unwrap();
    for i in 0..6 {
        assert_eq!(appended(&s, "g", &format!("c{i}")).await, [i + 1]);
    }
    let side = common::side(&url).await;
    assert_eq!(
        count(&side, &format!("SELECT count(*) FROM {schema}.messages")).await,
        3
    );
    assert_eq!(
        count(&side, &format!("SELECT messages FROM {schema}.channels")).await,
        3
    );
    assert_eq!(
        count(&side, &format!("SELECT count(*) FROM {schema}.events")).await,
        2
    );
    // c2 is forgotten: a retry is new; c3 is remembered: a duplicate.
    assert_eq!(appended(&s, "g", "c2").await, [7]);
    assert_eq!(appended(&s, "g", "c5").await, Vec::<u64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_retention_drops_old_events_in_the_background() {
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema();
    let config = PgConfig {
        schema: schema.clone(),
        retain_age: Some(Duration::from_secs(3_600)),
        maintenance_interval: Duration::from_millis(10),
        ..PgConfig::default()
    };
    let s = PgStore::connect(&url, config).await.unwrap();
    for i in 0..10 {
        appended(&s, "g", &format!("c{i}")).await;
        appended(&s, "h", &format!("c{i}")).await;
    }
    // g: the first four are two hours old. h: 1-3 and 5-6 are old, 4 is
    // not (another process's clock): only 1-3 may go, history stays
    // contiguous.
    let side = common::side(&url).await;
    side.batch_execute(&format!(
        "UPDATE {schema}.events SET at = at - 7200000
         WHERE (channel = 'g' AND seq <= 4) OR (channel = 'h' AND seq IN (1, 2, 3, 5, 6))"
    ))
    .await
    .unwrap();
    let oldest = |c: &'static str| {
        let s = s.clone();
        async move {
            let cmd = StoreCommand::Read {
                channel: ChannelId::new(c).unwrap(),
                from: ReadFrom::After(Seq(0)),
                limit: 100,
                max_bytes: usize::MAX,
            };
            let StoreReply::Events(p) = s.execute(cmd).await.unwrap() else {
                panic!()
            };
            (p.oldest_retained, p.events.first().map(LogEvent::seq))
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while (oldest("g").await, oldest("h").await) != ((Seq(5), Some(Seq(5))), (Seq(4), Some(Seq(4))))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "age retention never ran: {:?} {:?}",
            oldest("g").await,
            oldest("h").await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Dedupe memory outlives the events.
    assert_eq!(appended(&s, "g", "c0").await, Vec::<u64>::new());
}

#[tokio::test]
async fn client_message_ids_and_bodies_round_trip_whatever_they_hold() {
    let Some(url) = common::url() else { return };
    let s = common::fresh(&url, PgConfig::default()).await;
    let cmid = ClientMsgId::new("nul\0 and ünïcode ✓").unwrap();
    let body = Body::from_json(r#"{"z":"\u0000","a":["é",1.5e3,null],"m":{"y":1,"b":2}}"#).unwrap();
    let send = || StoreCommand::Append {
        channel: ChannelId::new("g").unwrap(),
        entries: vec![AppendEntry::Message {
            author: UserId::new("alice").unwrap(),
            client_msg_id: cmid.clone(),
            body: body.clone(),
            ts: 7,
        }],
        chain: lockstep_core::store::AppendChain::Start,
    };
    let first = s.execute(send()).await.unwrap();
    let StoreReply::Appended(o) = &first else {
        panic!("{first:?}")
    };
    let sent = o[0].appended().unwrap().clone();
    // Read back as sent: the body's text (key order included) and the key.
    assert_eq!(common::events(&s, "g").await, std::slice::from_ref(&sent));
    // And the key still dedupes.
    let again = s.execute(send()).await.unwrap();
    assert!(
        matches!(&again, StoreReply::Appended(o) if matches!(&o[0], AppendOutcome::Duplicate(Existing::Message(a)) if a.seq == Seq(1))),
        "{again:?}"
    );
}
