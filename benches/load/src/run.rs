//! The publisher and subscriber tasks of one run and what each reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lockstep_socketio_client::codec::{SioPacket, parse_sio};
use serde::Deserialize;
use tokio::time::Instant;

use crate::histogram::Histogram;
use crate::sio::{Incoming, Protocol, Socket};

/// How often an idle subscriber checks whether the run is over.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// Fixed for every task of a run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The channel everyone joins.
    pub(crate) channel: String,
    /// What the server speaks.
    pub(crate) protocol: Protocol,
    /// Sends in flight per publisher.
    pub(crate) window: usize,
    /// Padding that brings each body to its size (see [`body_pad`]).
    pub(crate) pad: String,
    /// The clock every timestamp is measured from.
    pub(crate) origin: Instant,
    /// Publishers send no new message after this.
    pub(crate) send_until: Instant,
    /// Every task stops by this time, finished or not.
    pub(crate) hard_stop: Instant,
}

/// Shared between publishers and subscribers so subscribers know when
/// they have seen everything.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Sends acknowledged `ok`, all publishers.
    pub(crate) acked: AtomicU64,
    /// Publishers still running.
    pub(crate) publishers_left: AtomicU64,
    /// Set when the last publisher has stopped.
    pub(crate) publishers_done: AtomicBool,
}

/// What one publisher saw.
#[derive(Debug, Default)]
pub(crate) struct PublisherReport {
    /// Sends acknowledged `ok`.
    pub(crate) acked: u64,
    /// Sends refused (`ok: false`).
    pub(crate) refused: u64,
    /// Sends still unanswered at the hard stop or on an error.
    pub(crate) unanswered: u64,
    /// When the last ack arrived, since the origin.
    pub(crate) last_ack: Duration,
    /// Why it stopped early, if it did.
    pub(crate) error: Option<String>,
}

/// What one subscriber saw.
#[derive(Debug)]
pub(crate) struct SubscriberReport {
    /// `message:new` events received.
    pub(crate) delivered: u64,
    /// Events whose `seq` was not the previous one + 1.
    pub(crate) out_of_order: u64,
    /// When the last delivery arrived, since the origin.
    pub(crate) last_delivery: Duration,
    /// Publish-to-delivery latency of each delivery, µs.
    pub(crate) latency: Histogram,
    /// Why it stopped early, if it did.
    pub(crate) error: Option<String>,
}

/// Publishes pipelined messages from `socket` until `plan.send_until`,
/// then waits for the acks still owed (until `plan.hard_stop`).
pub(crate) async fn publish(
    mut socket: Socket,
    me: usize,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
) -> PublisherReport {
    let mut report = PublisherReport::default();
    let mut next: u64 = 1;
    let mut in_flight: u64 = 0;
    let result: Result<(), String> = async {
        loop {
            let mut fed = false;
            while in_flight < plan.window as u64 && Instant::now() < plan.send_until {
                let packet = send_packet(&plan, me, next);
                socket.feed(packet).await.map_err(|e| e.to_string())?;
                next += 1;
                in_flight += 1;
                fed = true;
            }
            if fed {
                socket.flush().await.map_err(|e| e.to_string())?;
            }
            if in_flight == 0 {
                return Ok(());
            }
            let incoming = tokio::time::timeout_at(plan.hard_stop, socket.recv())
                .await
                .map_err(|_| "hard stop with sends unanswered".to_owned())?
                .map_err(|e| e.to_string())?;
            let Incoming::Packet(text) = incoming else {
                continue;
            };
            if let Some(ok) = ack_ok(plan.protocol, &text) {
                in_flight = in_flight.saturating_sub(1);
                if ok {
                    report.acked += 1;
                    report.last_ack = plan.origin.elapsed();
                    progress.acked.fetch_add(1, Ordering::SeqCst);
                } else {
                    report.refused += 1;
                }
            }
        }
    }
    .await;
    report.unanswered = in_flight;
    report.error = result.err();
    if progress.publishers_left.fetch_sub(1, Ordering::SeqCst) == 1 {
        progress.publishers_done.store(true, Ordering::SeqCst);
    }
    socket.close().await;
    report
}

/// Whether `packet` is an ack, and then whether it says `ok`. Anything
/// else a publisher receives is its copy of a broadcast.
fn ack_ok(protocol: Protocol, packet: &str) -> Option<bool> {
    match protocol {
        Protocol::Socketio if packet.starts_with('3') => match parse_sio(packet) {
            Ok(SioPacket::Ack { reply, .. }) => Some(crate::sio::reply_ok(reply.get())),
            _ => None,
        },
        Protocol::Raw if packet.starts_with(r#"{"ack":"#) => Some(crate::sio::reply_ok(packet)),
        Protocol::Socketio | Protocol::Raw => None,
    }
}

/// The message object of a delivery (`message:new`'s payload, followed by
/// the event array's closing bracket in Socket.IO), if `packet` is one.
fn delivery(protocol: Protocol, packet: &str) -> Option<&str> {
    match protocol {
        Protocol::Socketio => packet.strip_prefix("2[\"message:new\","),
        Protocol::Raw => packet.starts_with(r#"{"seq":"#).then_some(packet),
    }
}

/// The send request for message `n` of publisher `me`, stamped with the
/// time since the origin in µs (12 digits, so every body has the same
/// length). In Socket.IO, what `codec::encode_event` makes, written
/// directly to keep the generator's own cost per message low.
fn send_packet(plan: &Plan, me: usize, n: u64) -> String {
    let micros = plan.origin.elapsed().as_micros();
    match plan.protocol {
        Protocol::Socketio => format!(
            r#"42{n}["message:send",{{"channelId":"{}","clientMsgId":"p{me}-{n}","body":{{"t":"{micros:012}","p":"{}"}}}}]"#,
            plan.channel, plan.pad
        ),
        Protocol::Raw => format!(
            r#"{{"id":{n},"channel":"{}","body":{{"t":"{micros:012}","p":"{}"}}}}"#,
            plan.channel, plan.pad
        ),
    }
}

/// The padding that makes a body `{"t":"<12 digits>","p":"<pad>"}` take
/// `body_bytes` bytes of compact JSON (27 bytes at least).
pub(crate) fn body_pad(body_bytes: usize) -> String {
    "x".repeat(body_bytes.saturating_sub(27))
}

#[derive(Deserialize)]
struct NewMessage {
    seq: u64,
    body: StampedBody,
}

#[derive(Deserialize)]
struct StampedBody {
    t: String,
}

/// Reads `message:new` until every acknowledged message has arrived after
/// the publishers stopped, or `plan.hard_stop`.
pub(crate) async fn subscribe(
    mut socket: Socket,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
) -> SubscriberReport {
    let mut report = SubscriberReport {
        delivered: 0,
        out_of_order: 0,
        last_delivery: Duration::ZERO,
        latency: Histogram::new(),
        error: None,
    };
    let mut last_seq: Option<u64> = None;
    loop {
        if progress.publishers_done.load(Ordering::SeqCst)
            && report.delivered >= progress.acked.load(Ordering::SeqCst)
        {
            break;
        }
        if Instant::now() >= plan.hard_stop {
            report.error = Some("hard stop before every message arrived".into());
            break;
        }
        let incoming = match tokio::time::timeout(IDLE_CHECK, socket.recv()).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                report.error = Some(e.to_string());
                break;
            }
            Ok(Ok(Incoming::Other)) => continue,
            Ok(Ok(Incoming::Packet(text))) => text,
        };
        let Some(json) = delivery(plan.protocol, &incoming) else {
            continue;
        };
        // `{...}]`: read the payload object, ignore the closing bracket.
        let mut de = serde_json::Deserializer::from_str(json);
        let Ok(message) = NewMessage::deserialize(&mut de) else {
            continue;
        };
        let now = plan.origin.elapsed();
        report.delivered += 1;
        report.last_delivery = now;
        if last_seq.is_some_and(|s| s + 1 != message.seq) {
            report.out_of_order += 1;
        }
        last_seq = Some(message.seq);
        if let Ok(sent) = message.body.t.parse::<u64>() {
            let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
            report.latency.record(now_us.saturating_sub(sent));
        }
    }
    socket.close().await;
    report
}

#[cfg(test)]
mod tests {
    use lockstep_socketio_client::codec::{EioPacket, encode_event, parse_eio};
    use serde_json::json;

    use super::*;

    #[test]
    fn send_packets_are_what_the_codec_encodes_with_bodies_of_the_asked_size() {
        let origin = Instant::now();
        let plan = Plan {
            channel: "load".into(),
            protocol: Protocol::Socketio,
            window: 32,
            pad: body_pad(200),
            origin,
            send_until: origin,
            hard_stop: origin,
        };
        let packet = send_packet(&plan, 3, 17);
        let EioPacket::Message(sio) = parse_eio(&packet).unwrap() else {
            panic!("not a message: {packet}");
        };
        let SioPacket::Event { ack, name, payload } = parse_sio(&sio).unwrap() else {
            panic!("not an event: {sio}");
        };
        assert_eq!((ack, name.as_str()), (Some(17), "message:send"));
        let fields: serde_json::Value = serde_json::from_str(payload.get()).unwrap();
        assert_eq!(fields["clientMsgId"], json!("p3-17"));
        assert_eq!(serde_json::to_string(&fields["body"]).unwrap().len(), 200);
        // Same framing as the codec's (its JSON orders keys differently).
        let reencoded = encode_event("message:send", &fields.to_string(), Some(17));
        assert_eq!(packet.len(), reencoded.len());
        assert!(packet.starts_with(r#"4217["message:send",{"#));
        assert!(reencoded.starts_with(r#"4217["message:send",{"#));
    }

    #[test]
    fn raw_requests_acks_and_deliveries_are_told_apart() {
        let origin = Instant::now();
        let plan = Plan {
            channel: "load".into(),
            protocol: Protocol::Raw,
            window: 32,
            pad: body_pad(200),
            origin,
            send_until: origin,
            hard_stop: origin,
        };
        let request: serde_json::Value = serde_json::from_str(&send_packet(&plan, 3, 17)).unwrap();
        assert_eq!(
            (request["id"].clone(), request["channel"].clone()),
            (json!(17), json!("load"))
        );
        assert_eq!(serde_json::to_string(&request["body"]).unwrap().len(), 200);
        assert_eq!(
            ack_ok(Protocol::Raw, r#"{"ack":17,"ok":true,"seq":4}"#),
            Some(true)
        );
        assert_eq!(
            ack_ok(Protocol::Raw, r#"{"ack":17,"ok":false}"#),
            Some(false)
        );
        let new = r#"{"seq":4,"body":{"t":"000000000042","p":"x"}}"#;
        assert_eq!(ack_ok(Protocol::Raw, new), None);
        assert_eq!(delivery(Protocol::Raw, new), Some(new));
        assert_eq!(delivery(Protocol::Raw, r#"{"ack":1,"ok":true}"#), None);
        assert_eq!(
            ack_ok(Protocol::Socketio, r#"317[{"ok":true}]"#),
            Some(true)
        );
        assert_eq!(
            delivery(Protocol::Socketio, r#"2["message:new",{"seq":1}]"#),
            Some(r#"{"seq":1}]"#)
        );
    }

    #[test]
    fn a_broadcast_payload_is_read_up_to_its_closing_bracket() {
        let text = r#"{"channelId":"load","seq":9,"messageId":"m","authorId":"a","clientMsgId":"c","body":{"t":"000000000042","p":"x"},"ts":1}]"#;
        let mut de = serde_json::Deserializer::from_str(text);
        let message = NewMessage::deserialize(&mut de).unwrap();
        assert_eq!((message.seq, message.body.t.as_str()), (9, "000000000042"));
    }
}
