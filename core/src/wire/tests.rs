//! Round-trip, shape and hostile-input tests for the wire contract.

use serde_json::json;

use super::*;
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};

fn ch() -> ChannelId {
    ChannelId::new("general").unwrap()
}
fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}
fn new_message(seq: u64) -> NewMessage {
    NewMessage {
        channel_id: ch(),
        seq: Seq(seq),
        message_id: MessageId::new(format!("m{seq}")).unwrap(),
        author_id: user("alice"),
        client_msg_id: ClientMsgId::new("c1-1").unwrap(),
        body: Some(Body::text("hi")),
        ts: 1_700_000_000_000,
    }
}

fn all_client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            token: "dev:alice".into(),
        },
        ClientFrame::Join {
            req: ReqId(1),
            channel_id: ch(),
            epoch: None,
            since: None,
        },
        ClientFrame::Join {
            req: ReqId(2),
            channel_id: ch(),
            epoch: Some(Epoch(3)),
            since: Some(Seq(9)),
        },
        ClientFrame::Leave {
            req: ReqId(3),
            channel_id: ch(),
        },
        ClientFrame::Send {
            req: ReqId(4),
            channel_id: ch(),
            client_msg_id: ClientMsgId::new("c1-1").unwrap(),
            body: Body::new(json!({"text": "hi"})),
        },
        ClientFrame::Update {
            req: ReqId(5),
            channel_id: ch(),
            message_id: MessageId::new("m1").unwrap(),
            body: Body::text("edited"),
        },
        ClientFrame::Delete {
            req: ReqId(6),
            channel_id: ch(),
            message_id: MessageId::new("m1").unwrap(),
        },
        ClientFrame::History {
            req: ReqId(7),
            channel_id: ch(),
            after: Some(Seq(10)),
            limit: Some(50),
        },
        ClientFrame::Read {
            req: ReqId(8),
            channel_id: ch(),
            up_to: Seq(12),
        },
        ClientFrame::Typing {
            req: None,
            channel_id: ch(),
            active: true,
        },
        ClientFrame::Ping { nonce: 77 },
    ]
}

fn all_server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            user_id: user("alice"),
        },
        ServerFrame::Refused {
            error: ErrorBody::new(ErrorCode::Unauthorized, "unauthorized"),
        },
        ServerFrame::Ack {
            req: ReqId(1),
            body: Ack::Join(JoinAck {
                channel_id: ch(),
                epoch: Epoch(1),
                head_seq: Seq(2),
                members: vec![user("alice"), user("bob")],
                events: vec![
                    LogEvent::Message(new_message(1)),
                    LogEvent::Deleted(MessageDeleted {
                        channel_id: ch(),
                        seq: Seq(2),
                        message_id: MessageId::new("m1").unwrap(),
                    }),
                ],
                recovered: true,
            }),
        },
        ServerFrame::Ack {
            req: ReqId(2),
            body: Ack::Leave,
        },
        ServerFrame::Ack {
            req: ReqId(3),
            body: Ack::Send(SendAck {
                message_id: MessageId::new("m1").unwrap(),
                seq: Seq(1),
                ts: 5,
            }),
        },
        ServerFrame::Ack {
            req: ReqId(4),
            body: Ack::Update { seq: Seq(3) },
        },
        ServerFrame::Ack {
            req: ReqId(5),
            body: Ack::Delete { seq: Seq(4) },
        },
        ServerFrame::Ack {
            req: ReqId(6),
            body: Ack::History(HistoryAck {
                channel_id: ch(),
                epoch: Epoch(1),
                events: vec![],
                head_seq: Seq(4),
                more: false,
            }),
        },
        ServerFrame::Ack {
            req: ReqId(7),
            body: Ack::Read { up_to: Seq(4) },
        },
        ServerFrame::Ack {
            req: ReqId(8),
            body: Ack::Typing,
        },
        ServerFrame::Nack {
            req: ReqId(9),
            error: ErrorBody::new(ErrorCode::RateLimited, "slow down"),
        },
        ServerFrame::MessageNew(new_message(1)),
        ServerFrame::MessageUpdated(MessageUpdated {
            channel_id: ch(),
            seq: Seq(3),
            message_id: MessageId::new("m1").unwrap(),
            body: Some(Body::text("edited")),
        }),
        ServerFrame::MessageDeleted(MessageDeleted {
            channel_id: ch(),
            seq: Seq(4),
            message_id: MessageId::new("m1").unwrap(),
        }),
        ServerFrame::PresenceJoin(PresenceChange {
            channel_id: ch(),
            user_id: user("bob"),
        }),
        ServerFrame::PresenceLeave(PresenceChange {
            channel_id: ch(),
            user_id: user("bob"),
        }),
        ServerFrame::Typing(TypingNotice {
            channel_id: ch(),
            user_id: user("bob"),
            active: true,
        }),
        ServerFrame::Read(ReadReceipt {
            channel_id: ch(),
            user_id: user("bob"),
            up_to: Seq(4),
        }),
        ServerFrame::Pong { nonce: 77 },
    ]
}

#[test]
fn client_frames_round_trip() {
    for f in all_client_frames() {
        let bytes = encode_client(&f);
        assert_eq!(
            decode_client(&bytes).unwrap(),
            f,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn server_frames_round_trip() {
    for f in all_server_frames() {
        let bytes = encode_server(&f);
        assert_eq!(
            decode_server(&bytes).unwrap(),
            f,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// The JSON shape of every frame is part of the contract: reviewed as a snapshot.
#[test]
fn frame_shapes() {
    let lines: Vec<String> = all_client_frames()
        .iter()
        .map(|f| String::from_utf8(encode_client(f)).unwrap())
        .chain(
            all_server_frames()
                .iter()
                .map(|f| String::from_utf8(encode_server(f)).unwrap()),
        )
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn null_optional_fields_count_as_absent() {
    let f = decode_client(
        br#"{"type":"channel:join","req":1,"channelId":"a","epoch":null,"since":null}"#,
    )
    .unwrap();
    assert_eq!(
        f,
        ClientFrame::Join {
            req: ReqId(1),
            channel_id: ChannelId::new("a").unwrap(),
            epoch: None,
            since: None
        }
    );
}

#[test]
fn invalid_field_keeps_the_request_id() {
    let err = decode_client(
        br#"{"type":"message:send","req":42,"channelId":"bad channel","clientMsgId":"x","body":1}"#,
    )
    .unwrap_err();
    assert_eq!(err.req(), Some(ReqId(42)));
    assert!(
        matches!(err, DecodeError::Invalid { ref kind, .. } if kind == "message:send"),
        "{err}"
    );

    let err = decode_client(br#"{"type":"nonsense","req":5}"#).unwrap_err();
    assert_eq!(err.req(), Some(ReqId(5)));
}

#[test]
fn garbage_is_a_typed_error() {
    let cases: &[&[u8]] = &[
        b"",
        b"null",
        b"[1,2]",
        b"{\"type\":5}",
        b"\xff\xfe",
        b"{\"type\":\"channel:join\"",
        &[b'['; 10_000],
    ];
    // No envelope to read: malformed, with no request to answer.
    for bytes in cases {
        for result in [
            decode_client(bytes).map(|_| ()),
            decode_server(bytes).map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
            assert_eq!(err.req(), None);
        }
    }
    // An envelope with a request id: invalid, answerable on that request.
    for (bytes, kind) in [
        (&br#"{"type":"channel:join","req":3}"#[..], "channel:join"),
        (br#"{"type":"nope","req":3,"x":[1]}"#, "nope"),
        (
            br#"{"req":3,"type":"message:send","channelId":"a","body":1}"#,
            "message:send",
        ),
    ] {
        let err = decode_client(bytes).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Invalid { req: Some(ReqId(3)), kind: k, .. } if k == kind),
            "{err:?}"
        );
    }
    let big = vec![b' '; MAX_FRAME_BYTES + 1];
    assert!(matches!(
        decode_client(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

proptest::proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = decode_client(&bytes);
        let _ = decode_server(&bytes);
    }

    #[test]
    fn decoding_arbitrary_strings_never_panics(s in "\\{\"type\":\"(channel:join|message:send|ack|nack)\".{0,80}\\}") {
        let _ = decode_client(s.as_bytes());
        let _ = decode_server(s.as_bytes());
    }
}

#[test]
fn a_log_event_kind_is_its_type_tag_on_the_wire() {
    let events = [
        LogEvent::Message(new_message(1)),
        LogEvent::Updated(MessageUpdated {
            channel_id: ch(),
            seq: Seq(2),
            message_id: MessageId::new("m1").unwrap(),
            body: Some(Body::text("edited")),
        }),
        LogEvent::Deleted(MessageDeleted {
            channel_id: ch(),
            seq: Seq(3),
            message_id: MessageId::new("m1").unwrap(),
        }),
    ];
    for event in &events {
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(json["type"], event.kind(), "{json}");
    }
}

#[test]
fn a_frame_weighs_at_least_its_encoding() {
    // Queues budget bytes by weight without encoding: it must never
    // undercount, even for a reply full of the longest ids.
    let long = |n: usize| "x".repeat(n);
    let heavy = NewMessage {
        channel_id: ChannelId::new(long(128)).unwrap(),
        message_id: MessageId::new(long(128)).unwrap(),
        author_id: UserId::new(long(64)).unwrap(),
        client_msg_id: ClientMsgId::new("\u{1}".repeat(128)).unwrap(),
        seq: Seq(u64::MAX),
        ts: u64::MAX,
        body: Some(Body::text("é\"\n".repeat(1_000))),
    };
    let mut frames = all_server_frames();
    frames.push(ServerFrame::MessageNew(heavy.clone()));
    frames.push(ServerFrame::Ack {
        req: ReqId(u64::MAX),
        body: Ack::Join(JoinAck {
            channel_id: heavy.channel_id.clone(),
            epoch: Epoch(u64::MAX),
            head_seq: Seq(u64::MAX),
            members: vec![heavy.author_id.clone(); 50],
            events: vec![LogEvent::Message(heavy); 20],
            recovered: true,
        }),
    });
    for frame in frames {
        let len = encode_server(&frame).len();
        assert!(frame.weight() >= len, "{} < {len}", frame.weight());
    }
    // And close to it for chat traffic, so a queue's byte budget holds
    // about as many messages as it says.
    let chat = ServerFrame::MessageNew(new_message(7));
    let len = encode_server(&chat).len();
    assert!(
        chat.weight() <= len + FRAME_WEIGHT_SLACK,
        "{} vs {len}",
        chat.weight()
    );
}

/// How far a chat message's weight may exceed its encoding.
const FRAME_WEIGHT_SLACK: usize = 256;

#[test]
fn body_numbers_survive_decode_and_encode() {
    // Found by fuzzing (the `decode` target, regressions/decode/
    // body-number-changes-on-reencode): a number in a body changed when a
    // decoded frame was encoded and decoded again.
    for number in [
        "94999999999991999991",
        "0.1",
        "0.30000000000000004",
        "2.2250738585072011e-308",
        "1.7976931348623157e308",
        "5e-324",
        "-0.0",
        "18446744073709551615",
        "-9223372036854775808",
    ] {
        let text = format!(
            r#"{{"type":"message:send","req":5,"channelId":"l","clientMsgId":"c","body":{number}}}"#
        );
        let first = decode_client(text.as_bytes()).unwrap();
        let again = decode_client(&encode_client(&first)).unwrap();
        assert_eq!(first, again, "{number}");
        assert_eq!(encode_client(&first), encode_client(&again), "{number}");
    }
}
