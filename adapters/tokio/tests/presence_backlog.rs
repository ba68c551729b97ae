//! Arbitrated presence under a burst: when many users arrive at once (a
//! dead process's clients reconnecting here), the arbiter's queue fills;
//! the driver holds the overflow in order and feeds it as room frees up,
//! so every claim reaches the arbiter, none is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use lockstep_core::server::{Open, PresenceCommand, PresenceScope, SharedTail};
use lockstep_core::wire::{Ack, ClientFrame, ReqId, ServerFrame};
use lockstep_tokio::server::{
    Peers, ServerDriverConfig, SharedMemStore, TokioClock, spawn_shared_server,
};
use tokio::sync::mpsc;

#[tokio::test]
async fn a_burst_of_claims_past_the_arbiters_queue_reaches_it_in_order() {
    let (notes, _notes_rx) = mpsc::channel(1_024);
    let (_events_tx, events) = mpsc::channel(16);
    // Room for one command: the burst below overflows it at once.
    let (presence, mut arbiter) = mpsc::channel(1);
    let peers = Peers {
        tail: SharedTail {
            presence: PresenceScope::Arbitrated,
            ..SharedTail::default()
        },
        notes,
        events,
        presence: Some(presence),
    };
    let server = spawn_shared_server(
        ServerDriverConfig::default(),
        Open,
        SharedMemStore::default(),
        TokioClock::starting_at(1_000),
        peers,
    );
    let door = server.frontdoor();
    let room = channel("room");
    const USERS: usize = 40;
    let mut conns = Vec::new();
    for i in 0..USERS {
        let (inbound, mut outbound) = door.open(user(&format!("u{i:02}"))).await.unwrap();
        assert!(matches!(
            outbound.recv().await.unwrap().frame,
            ServerFrame::Welcome { .. }
        ));
        inbound
            .frame(ClientFrame::Join {
                req: ReqId(1),
                channel_id: room.clone(),
                epoch: None,
                since: None,
            })
            .await
            .unwrap();
        assert!(matches!(
            outbound.recv().await.unwrap().frame,
            ServerFrame::Ack {
                body: Ack::Join(_),
                ..
            }
        ));
        conns.push((inbound, outbound));
    }
    // Only now does the arbiter read: every claim arrives, in join order.
    let mut claimed = Vec::new();
    while claimed.len() < USERS {
        let cmd = tokio::time::timeout(Duration::from_secs(30), arbiter.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {USERS} claims arrived", claimed.len()))
            .expect("the driver is running");
        if let PresenceCommand::Claim(change) = cmd {
            claimed.push(change.user_id.as_str().to_owned());
        }
    }
    let want: Vec<String> = (0..USERS).map(|i| format!("u{i:02}")).collect();
    assert_eq!(claimed, want);
}
