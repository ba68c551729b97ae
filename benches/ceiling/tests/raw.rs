//! The raw protocol end to end: joins and sends acknowledged, every member
//! sent each message once, in seq order, with its body as sent; garbage
//! refused without closing the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lockstep_ceiling::serve(listener));
    format!("ws://{addr}/")
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(30), ws.next())
            .await
            .expect("an answer")
            .expect("open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn members_get_every_message_once_in_seq_order() {
    let url = server().await;
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    for ws in [&mut a, &mut b] {
        send(ws, json!({"id": 1, "join": "room"})).await;
        assert_eq!(next(ws).await, json!({"ack": 1, "ok": true}));
    }
    for i in 0..5_u64 {
        send(
            &mut a,
            json!({"id": 10 + i, "channel": "room", "body": {"n": i}}),
        )
        .await;
    }
    let mut acks = Vec::new();
    let mut a_got = Vec::new();
    while acks.len() < 5 || a_got.len() < 5 {
        let v = next(&mut a).await;
        if v.get("ack").is_some() {
            acks.push(v);
        } else {
            a_got.push(v);
        }
    }
    for (i, ack) in acks.iter().enumerate() {
        let i = i as u64;
        assert_eq!(*ack, json!({"ack": 10 + i, "ok": true, "seq": i + 1}));
    }
    let mut b_got = Vec::new();
    for _ in 0..5 {
        b_got.push(next(&mut b).await);
    }
    let want: Vec<Value> = (0..5_u64)
        .map(|i| json!({"seq": i + 1, "body": {"n": i}}))
        .collect();
    assert_eq!(a_got, want);
    assert_eq!(b_got, want);
    // Garbage and unknown requests are refused; the connection goes on.
    a.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next(&mut a).await, json!({"ack": 0, "ok": false}));
    send(&mut a, json!({"id": 7, "what": 1})).await;
    assert_eq!(next(&mut a).await, json!({"ack": 7, "ok": false}));
    send(&mut b, json!({"id": 8, "channel": "room", "body": "later"})).await;
    assert_eq!(next(&mut b).await["seq"], json!(6));
}
