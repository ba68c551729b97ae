//! The driver fed directly through its frontdoor, as any front (e.g. a
//! future Socket.IO front) feeds it: a consumer that does not read is cut
//! off, never silently skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use lockstep_core::client::ClientEvent;
use lockstep_core::ids::{ClientMsgId, Epoch};
use lockstep_core::server::{Open, ServerConfig};
use lockstep_core::wire::{Ack, Body, ClientFrame, ReqId, ServerFrame};
use lockstep_tokio::server::{
    OutboundEnd, ServerDriverConfig, SharedMemStore, TokioClock, spawn_server,
};

#[tokio::test]
async fn a_consumer_that_cannot_keep_up_is_disconnected() {
    let config = ServerDriverConfig {
        machine: ServerConfig::default(),
        conn_queue: 4,
        inputs_capacity: 64,
        ..ServerDriverConfig::default()
    };
    let delivered =
        cut_off_after_ten_messages(config, |i| Body::text(format!("message {i}"))).await;
    assert!(
        delivered < 10,
        "only part of the stream was queued: {delivered}"
    );
}

#[tokio::test]
async fn a_consumer_behind_in_bytes_is_disconnected_with_room_in_frames() {
    // Room for a thousand frames, but 16 KiB: four 4 KiB messages.
    let config = ServerDriverConfig {
        conn_queue: 1_000,
        conn_queue_bytes: 16 * 1_024,
        ..ServerDriverConfig::default()
    };
    let heavy = |i| Body::text(format!("{i}{}", "x".repeat(4_000)));
    let delivered = cut_off_after_ten_messages(config, heavy).await;
    assert!(
        delivered <= 4,
        "at most 16 KiB were queued: {delivered} frames"
    );
}

/// A slow member that never reads and a fast one that posts ten messages
/// with `body(i)`: the slow one is cut off. Returns how many frames it got
/// before the end.
async fn cut_off_after_ten_messages(
    config: ServerDriverConfig,
    body: impl Fn(u64) -> Body,
) -> usize {
    let store = SharedMemStore::default();
    let server = spawn_server(config, Open, store.clone(), TokioClock::starting_at(1_000));
    let door = server.frontdoor();
    let general = channel("general");
    let join = |req| ClientFrame::Join {
        req: ReqId(req),
        channel_id: general.clone(),
        epoch: None,
        since: None,
    };

    // The slow reader joins and then never reads again.
    let (slow_in, mut slow_out) = door.open(user("slow")).await.unwrap();
    assert!(matches!(
        slow_out.recv().await.unwrap().frame,
        ServerFrame::Welcome { .. }
    ));
    slow_in.frame(join(1)).await.unwrap();
    assert!(matches!(
        slow_out.recv().await.unwrap().frame,
        ServerFrame::Ack {
            body: Ack::Join(_),
            ..
        }
    ));

    // The fast one posts more than the slow one's queue holds.
    let (fast_in, mut fast_out) = door.open(user("fast")).await.unwrap();
    assert!(matches!(
        fast_out.recv().await.unwrap().frame,
        ServerFrame::Welcome { .. }
    ));
    fast_in.frame(join(1)).await.unwrap();
    assert!(matches!(
        fast_out.recv().await.unwrap().frame,
        ServerFrame::Ack {
            body: Ack::Join(_),
            ..
        }
    ));
    // One message at a time, reading the fast one's ack and broadcast each
    // time, so only the slow one falls behind.
    for i in 0..10u64 {
        fast_in
            .frame(ClientFrame::Send {
                req: ReqId(2 + i),
                channel_id: general.clone(),
                client_msg_id: ClientMsgId::new(format!("m{i}")).unwrap(),
                body: body(i),
            })
            .await
            .unwrap();
        let (mut acked, mut broadcast) = (false, false);
        while !(acked && broadcast) {
            let frame = tokio::time::timeout(WAIT, fast_out.recv())
                .await
                .unwrap()
                .unwrap();
            match &frame.frame {
                ServerFrame::Ack {
                    body: Ack::Send(_), ..
                } => acked = true,
                ServerFrame::MessageNew(_) => broadcast = true,
                _ => {}
            }
        }
    }
    // The slow one got what fit, then was cut off.
    let mut delivered = 0;
    let end = loop {
        match tokio::time::timeout(WAIT, slow_out.recv()).await.unwrap() {
            Ok(_) => delivered += 1,
            Err(end) => break end,
        }
    };
    assert_eq!(end, OutboundEnd::Killed);
    assert_eq!(
        store.lock().head(&general).map(|(e, s)| (e, s.0)),
        Some((Epoch(1), 10))
    );
    drop((slow_in, fast_in));
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
    // Silence an unused-import lint in this test's copy of `common`.
    let _ = std::mem::size_of::<ClientEvent>();
    delivered
}
