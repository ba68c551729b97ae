//! The hand reader and writer held to serde's derives: frames the server's
//! encoder writes decode to the same values, payloads are written as serde
//! writes them, and malformed text is a typed error, never a panic.

use proptest::prelude::*;
use serde::de::DeserializeOwned;

use super::*;
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::socketio::{
    Emit, Outgoing, decode_reply, decode_server_event, emit, encode_frame,
};
use crate::wire::{
    Ack, Body, ClientFrame, ErrorBody, ErrorCode, HistoryAck, JoinAck, LogEvent, PresenceChange,
    ReadReceipt, ReqId, SendAck, ServerFrame, TypingNotice,
};

fn channel() -> impl Strategy<Value = ChannelId> {
    "[A-Za-z0-9_:.-]{1,20}".prop_map(|s| ChannelId::new(s).unwrap())
}

fn user() -> impl Strategy<Value = UserId> {
    "[A-Za-z0-9_-]{1,20}".prop_map(|s| UserId::new(s).unwrap())
}

/// Any text, quotes, backslashes, controls and non-ASCII often.
fn text() -> impl Strategy<Value = String> {
    "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}é😀]){1,16}"
}

fn message_id() -> impl Strategy<Value = MessageId> {
    text().prop_filter_map("a message id", |s| MessageId::new(s).ok())
}

fn client_msg_id() -> impl Strategy<Value = ClientMsgId> {
    text().prop_filter_map("a client message id", |s| ClientMsgId::new(s).ok())
}

/// Bodies in their compact form, of every kind of value.
fn body() -> impl Strategy<Value = Body> {
    let leaf = prop_oneof![
        text().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
    .prop_map(Body::new)
}

fn log_event() -> impl Strategy<Value = LogEvent> {
    // A `null` body travels as an absent one (serde reads both as `None`).
    crate::wire::event::tests::event_with(proptest::option::of(
        body().prop_filter("not null", |b| b.json() != "null"),
    ))
}

/// Every frame a server sends a Socket.IO client.
fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let events = prop::collection::vec(log_event(), 0..4);
    let code = prop::sample::select(ErrorCode::ALL.to_vec());
    prop_oneof![
        (user(), any::<u32>())
            .prop_map(|(user_id, version)| ServerFrame::Welcome { version, user_id }),
        log_event().prop_map(ServerFrame::from),
        (channel(), user(), 0..2u8).prop_map(|(channel_id, user_id, join)| {
            let p = PresenceChange {
                channel_id,
                user_id,
            };
            if join == 0 {
                ServerFrame::PresenceJoin(p)
            } else {
                ServerFrame::PresenceLeave(p)
            }
        }),
        (channel(), user(), any::<bool>()).prop_map(|(channel_id, user_id, active)| {
            ServerFrame::Typing(TypingNotice {
                channel_id,
                user_id,
                active,
            })
        }),
        (channel(), user(), any::<u64>()).prop_map(|(channel_id, user_id, up_to)| {
            ServerFrame::Read(ReadReceipt {
                channel_id,
                user_id,
                up_to: Seq(up_to),
            })
        }),
        (
            any::<u64>(),
            channel(),
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(user(), 0..4),
            events,
            any::<bool>(),
            0..9u8
        )
            .prop_map(
                |(req, channel_id, epoch, head, members, events, flag, kind)| {
                    let body = match kind {
                        0 => Ack::Join(JoinAck {
                            channel_id,
                            epoch: Epoch(epoch),
                            head_seq: Seq(head),
                            members,
                            events,
                            recovered: flag,
                        }),
                        1 => Ack::History(HistoryAck {
                            channel_id,
                            epoch: Epoch(epoch),
                            events,
                            head_seq: Seq(head),
                            more: flag,
                        }),
                        2 => Ack::Send(SendAck {
                            message_id: MessageId::minted(Epoch(epoch), Seq(head)),
                            seq: Seq(head),
                            ts: epoch,
                        }),
                        3 => Ack::Update { seq: Seq(head) },
                        4 => Ack::Delete { seq: Seq(head) },
                        5 => Ack::Read { up_to: Seq(head) },
                        6 => Ack::Leave,
                        _ => Ack::Typing,
                    };
                    ServerFrame::Ack {
                        req: ReqId(req),
                        body,
                    }
                }
            ),
        (any::<u64>(), code, text()).prop_map(|(req, code, message)| ServerFrame::Nack {
            req: ReqId(req),
            error: ErrorBody::new(code, message),
        }),
    ]
}

/// The frame the client decodes from what the server's encoder wrote,
/// compact or pretty-printed (spaces, newlines: bodies transcoded).
fn round_trip(
    frame: &ServerFrame,
    pretty: bool,
) -> Option<std::result::Result<ServerFrame, String>> {
    let spell = |raw: &serde_json::value::RawValue| {
        if pretty {
            let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            raw.get().to_owned()
        }
    };
    match encode_frame(frame) {
        Outgoing::Event { name, payload } => Some(
            decode_server_event(name, &spell(&payload))
                .map(Option::unwrap)
                .map_err(|e| e.to_string()),
        ),
        Outgoing::Reply { req, body } => {
            let kind = match frame {
                ServerFrame::Ack { body, .. } => body.kind(),
                _ => "send",
            };
            Some(decode_reply(req, kind, &spell(&body)).map_err(|e| e.to_string()))
        }
        Outgoing::Refused(_) | Outgoing::Nothing => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every frame the server's encoder writes decodes to the same frame.
    #[test]
    fn server_frames_decode_to_what_was_encoded(frame in server_frame(), pretty in any::<bool>()) {
        if let Some(decoded) = round_trip(&frame, pretty) {
            prop_assert_eq!(decoded, Ok(frame));
        }
    }

    /// Request payloads are written as serde writes them, and decode back.
    #[test]
    fn request_payloads_are_what_serde_writes(
        channel_id in channel(),
        message_id in message_id(),
        client_msg_id in client_msg_id(),
        body in body(),
        n in any::<u64>(),
        m in proptest::option::of(any::<u64>()),
        flag in any::<bool>(),
        kind in 0..8u8,
    ) {
        let req = ReqId(n);
        let frame = match kind {
            0 => ClientFrame::Join { req, channel_id, epoch: m.map(Epoch), since: m.map(|m| Seq(m / 2)) },
            1 => ClientFrame::Leave { req, channel_id },
            2 => ClientFrame::Send { req, channel_id, client_msg_id, body },
            3 => ClientFrame::Update { req, channel_id, message_id, body },
            4 => ClientFrame::Delete { req, channel_id, message_id },
            5 => ClientFrame::History { req, channel_id, after: m.map(Seq), limit: m },
            6 => ClientFrame::Read { req, channel_id, up_to: Seq(n) },
            _ => ClientFrame::Typing { req: Some(req), channel_id, active: flag },
        };
        let Emit::Event { name, payload, .. } = emit(&frame) else {
            panic!("a request is an event");
        };
        prop_assert_eq!(Some(payload.clone()), crate::wire::socketio::fields::payload(&frame));
        let back = crate::wire::socketio::decode_event(name, Some(&payload), req).unwrap();
        prop_assert_eq!(back, frame);
    }

    /// Text cut or spliced anywhere: never a panic, and whatever the hand
    /// reader accepts serde accepts as the same value.
    #[test]
    fn mangled_events_are_errors_or_what_serde_reads(
        frame in server_frame(),
        at in any::<prop::sample::Index>(),
        insert in prop::sample::select(vec!["", "\"", "\\", ",", "}", "]", "{", "1", "-", " ", "null", "\\u00", "\u{1}", "é"]),
        cut in 0..3usize,
    ) {
        let Outgoing::Event { name, payload } = encode_frame(&frame) else {
            return Ok(());
        };
        let text = payload.get();
        let mut at = at.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + cut).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mangled = format!("{}{insert}{}", &text[..at], &text[end..]);
        if let Ok(Some(hand)) = decode_server_event(name, &mangled) {
            prop_assert_eq!(Some(hand), serde_event(name, &mangled));
        }
    }

    /// Arbitrary text as any event or reply: a typed error or a frame,
    /// never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "[\\[\\]{}\",:0-9a-z\\\\ .eE+-]{0,64}", which in 0..10usize) {
        let names = ["session", "message:new", "message:updated", "message:deleted", "presence:join", "typing", "message:read"];
        if let Some(name) = names.get(which) {
            let _ = decode_server_event(name, &text);
        } else {
            let _ = decode_reply(ReqId(1), ["join", "history", "send"][which - names.len()], &text);
        }
        let _ = Body::from_json(&text);
    }
}

/// What the serde derives read from an event's payload.
fn serde_event(name: &str, payload: &str) -> Option<ServerFrame> {
    fn parse<T: DeserializeOwned>(payload: &str) -> Option<T> {
        serde_json::from_str(payload).ok()
    }
    Some(match name {
        "message:new" => ServerFrame::MessageNew(parse(payload)?),
        "message:updated" => ServerFrame::MessageUpdated(parse(payload)?),
        "message:deleted" => ServerFrame::MessageDeleted(parse(payload)?),
        "presence:join" => ServerFrame::PresenceJoin(parse(payload)?),
        "presence:leave" => ServerFrame::PresenceLeave(parse(payload)?),
        "typing" => ServerFrame::Typing(parse(payload)?),
        "message:read" => ServerFrame::Read(parse(payload)?),
        _ => {
            let (version, user_id): (u32, UserId) = {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Session {
                    user_id: UserId,
                    version: u32,
                }
                let s: Session = parse(payload)?;
                (s.version, s.user_id)
            };
            ServerFrame::Welcome { version, user_id }
        }
    })
}

#[test]
fn what_serde_accepts_the_reader_accepts_alike() {
    let typing = r#"{"channelId":"c","userId":"u","active":true}"#;
    for text in [
        typing.to_owned(),
        format!(" {typing} "),
        r#"{"active":false,"userId":"u","channelId":"c","x":[{"y":"\ud800"}]}"#.to_owned(),
        r#"{"channelId":"\u0063","userId":"u","active":true}"#.to_owned(),
        r#"{"channel\u0049d":"c","userId":"u","active":true,"":null}"#.to_owned(),
    ] {
        let hand = decode_server_event("typing", &text).unwrap();
        assert_eq!(hand, serde_event("typing", &text), "{text}");
    }
}

#[test]
fn malformed_text_is_a_typed_error() {
    let good = r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","body":{"t":[1,2.5]},"ts":2}"#;
    assert!(decode_server_event("message:new", good).unwrap().is_some());
    for bad in [
        "",
        "{",
        "}",
        "[]",
        "null",
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,}"#,
        r#"{"channelId":"c","seq":-1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2}"#,
        r#"{"channelId":"c","seq":1.0,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2}"#,
        r#"{"channelId":"c","seq":01,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2}"#,
        r#"{"channelId":"c","seq":18446744073709551616,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2}"#,
        r#"{"channelId":"c","seq":1,"seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2}"#,
        r#"{"channelId":"c c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,"body":"\ud800"}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,"body":1e400}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,"body":[1,]}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,"body":"a
b"}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k"}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2} x"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,"x":tru}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,"x":"\x"}"#,
        r#"{"channelId":"c","seq":1,"messageId":"m","authorId":"a","clientMsgId":"k","ts":2,"x":"\u12"}"#,
    ] {
        let serde = serde_event("message:new", bad);
        assert!(serde.is_none(), "serde takes {bad:?}");
        assert!(
            matches!(
                decode_server_event("message:new", bad),
                Err(crate::wire::DecodeError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
    for (kind, bad) in [
        ("send", r#"{"ok":true}"#),
        ("send", r#"{"ok":1,"messageId":"m","seq":1,"ts":1}"#),
        ("send", r#"{"messageId":"m","seq":1,"ts":1}"#),
        ("send", r#"{"ok":false}"#),
        ("send", r#"{"ok":false,"error":{"code":"nope"}}"#),
        (
            "send",
            r#"{"ok":true,"ok":true,"messageId":"m","seq":1,"ts":1}"#,
        ),
        (
            "join",
            r#"{"ok":true,"channelId":"c","epoch":1,"headSeq":0,"members":[],"events":[{"type":"other"}],"recovered":true}"#,
        ),
        ("nope", r#"{"ok":true}"#),
        ("leave", "[true]"),
    ] {
        assert!(decode_reply(ReqId(1), kind, bad).is_err(), "{kind} {bad}");
    }
    let refused = decode_reply(
        ReqId(1),
        "send",
        r#"{"ok":false,"error":{"code":"forbidden"}}"#,
    );
    assert_eq!(
        refused.unwrap(),
        ServerFrame::Nack {
            req: ReqId(1),
            error: ErrorBody::new(ErrorCode::Forbidden, "")
        }
    );
}

#[test]
fn strings_are_escaped_as_serde_escapes_them() {
    for s in [
        "",
        "plain",
        "q\"b\\s/",
        "\u{0}\u{1f}\u{8}\u{c}\n\r\t\u{7f}",
        "é😀",
    ] {
        let mut out = String::new();
        write_str(&mut out, s);
        assert_eq!(out, serde_json::to_string(s).unwrap());
        assert_eq!(Reader::new(&out).string().unwrap(), s);
    }
    for n in [0, 9, 10, 12_345, u64::MAX] {
        let mut out = String::new();
        write_u64(&mut out, n);
        assert_eq!(out, n.to_string());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Numbers of any spelling (long mantissas, exponents far out either
    /// way, integers past `u64` and `i64`) come out as serde_json writes
    /// what it reads, or are refused where serde_json refuses them.
    #[test]
    fn numbers_are_written_as_serde_reads_them(
        text in "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?",
    ) {
        let serde = serde_json::from_str::<serde_json::Value>(&text)
            .map(|v| serde_json::to_string(&v).unwrap());
        let hand = compact(&text);
        prop_assert_eq!(hand.ok(), serde.ok(), "{}", text);
    }
}

#[test]
fn numbers_at_the_edges_are_written_as_serde_reads_them() {
    for text in [
        "0",
        "-0",
        "-0.0",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "1e308",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "1e309",
        "-1e400",
        "2.2250738585072011e-308",
        "4.9e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1e-400",
        "-1e-400",
        "9007199254740993",
        "0.1",
        "100000000000000000000000",
        "123456789012345678901234567890e-10",
    ] {
        let serde = serde_json::from_str::<serde_json::Value>(text)
            .map(|v| serde_json::to_string(&v).unwrap());
        assert_eq!(compact(text).ok(), serde.ok(), "{text}");
    }
}

proptest! {
    /// Strings of any length and content read back to what was written,
    /// whatever falls on the eight-byte boundaries of the fast scan.
    #[test]
    fn strings_of_any_length_read_back(s in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}é])*", pad in 0..8usize) {
        let mut out = " ".repeat(pad);
        write_str(&mut out, &s);
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.string().unwrap(), s.as_str());
        prop_assert_eq!(r.end(), Ok(()));
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.raw().unwrap(), out.trim_start());
        prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
    }
}
