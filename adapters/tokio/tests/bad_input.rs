//! Untrusted bytes on both sides: the server closes bad connections with a
//! logged reason and keeps serving; a client whose server talks garbage
//! reconnects per its policy. Nothing panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use lockstep_core::client::{ClientEvent, ConnectionState, Outcome, ProtocolError};
use lockstep_core::wire::{
    ClientFrame, ErrorCode, PROTOCOL_VERSION, ServerFrame, decode_server, encode_client,
};
use lockstep_tokio::server::SharedMemStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn hello(user: &str) -> Vec<u8> {
    framed(&encode_client(&ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        token: format!("dev:{user}"),
    }))
}

/// Reads length-delimited frames until the server closes the connection;
/// fails the test if it stays open.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<ServerFrame> {
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection")
        .ok();
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(payload) = rest.get(4..4 + len) else {
            break;
        };
        frames.push(decode_server(payload).unwrap());
        rest = &rest[4 + len..];
    }
    frames
}

/// Reads exactly one frame.
async fn read_frame(stream: &mut TcpStream) -> ServerFrame {
    tokio::time::timeout(WAIT, async {
        let len = stream.read_u32().await.unwrap() as usize;
        let mut buf = vec![0; len];
        stream.read_exact(&mut buf).await.unwrap();
        decode_server(&buf).unwrap()
    })
    .await
    .expect("a frame arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_are_closed_and_the_server_keeps_serving() {
    let (server, addr) =
        start_server("127.0.0.1:0".parse().unwrap(), SharedMemStore::default()).await;

    // A frame that is not JSON instead of hello: refused `invalid`, closed.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(&framed(b"\xff\x00not json"))
        .await
        .unwrap();
    let frames = read_until_closed(&mut garbage).await;
    assert!(
        matches!(&frames[..], [ServerFrame::Refused { error }] if error.code == ErrorCode::Invalid),
        "{frames:?}"
    );

    // Plain text: its first bytes read as a length far above the limit.
    let mut http = TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_until_closed(&mut http).await.is_empty());

    // An oversized length prefix after a good handshake.
    let mut big = TcpStream::connect(addr).await.unwrap();
    big.write_all(&hello("mallory")).await.unwrap();
    assert!(matches!(
        read_frame(&mut big).await,
        ServerFrame::Welcome { .. }
    ));
    big.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(read_until_closed(&mut big).await.is_empty());

    // A peer that closes in the middle of a frame.
    let mut cut = TcpStream::connect(addr).await.unwrap();
    cut.write_all(&hello("mallory")).await.unwrap();
    assert!(matches!(
        read_frame(&mut cut).await,
        ServerFrame::Welcome { .. }
    ));
    cut.write_all(&100u32.to_be_bytes()).await.unwrap();
    cut.write_all(b"{\"type\":").await.unwrap();
    cut.shutdown().await.unwrap();
    assert!(read_until_closed(&mut cut).await.is_empty());

    // A malformed request that names its req: refused `invalid`, and the
    // connection stays usable.
    let mut sloppy = TcpStream::connect(addr).await.unwrap();
    sloppy.write_all(&hello("mallory")).await.unwrap();
    assert!(matches!(
        read_frame(&mut sloppy).await,
        ServerFrame::Welcome { .. }
    ));
    sloppy
        .write_all(&framed(br#"{"type":"channel:join","req":7,"channelId":5}"#))
        .await
        .unwrap();
    let nack = read_frame(&mut sloppy).await;
    assert!(
        matches!(&nack, ServerFrame::Nack { req, error } if req.0 == 7 && error.code == ErrorCode::Invalid),
        "{nack:?}"
    );
    sloppy
        .write_all(&framed(&encode_client(&ClientFrame::Ping { nonce: 9 })))
        .await
        .unwrap();
    assert_eq!(
        read_frame(&mut sloppy).await,
        ServerFrame::Pong { nonce: 9 }
    );

    // The server still serves a well-behaved client.
    let general = channel("general");
    let mut alice = App::start("alice", fast_config("dev:alice", 1, 100), addr);
    alice.handle.connect();
    alice.handle.subscribe(general.clone()).unwrap();
    alice.subscribed(&general).await;
    let sent = alice.send(&general, "still here");
    let outcome = tokio::time::timeout(WAIT, sent.outcome())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");

    alice.handle.close().await;
    drop(sloppy);
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_server_talks_garbage_reconnects() {
    // A fake server: every connection gets one undecodable frame, then a
    // length prefix beyond the limit, which breaks the stream.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let fake = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = stream.write_all(&framed(b"{\"type\":\"nonsense\"}")).await;
                let _ = stream.write_all(&u32::MAX.to_be_bytes()).await;
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });

    let mut alice = App::start("alice", fast_config("dev:alice", 1, 50), addr);
    alice.handle.connect();
    let mut attempts = 0;
    alice
        .wait_for("three connection attempts", |e| {
            if matches!(e, ClientEvent::State(ConnectionState::Connecting { .. })) {
                attempts += 1;
            }
            attempts >= 3
        })
        .await;
    assert!(accepted.load(Ordering::SeqCst) >= 2);
    assert!(
        alice
            .seen
            .iter()
            .any(|e| matches!(e, ClientEvent::Protocol(ProtocolError::Undecodable(_)))),
        "the undecodable frame is reported: {:#?}",
        alice.seen
    );
    assert!(
        alice
            .seen
            .iter()
            .any(|e| matches!(e, ClientEvent::State(ConnectionState::Reconnecting { .. })))
    );
    alice.handle.close().await;
    fake.abort();
}
