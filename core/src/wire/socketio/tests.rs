use serde_json::{Value, json};

use super::*;
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId};
use crate::wire::{
    Body, HistoryAck, JoinAck, LogEvent, MessageDeleted, MessageUpdated, NewMessage,
    PresenceChange, ReadReceipt, SendAck, TypingNotice,
};

fn ch() -> ChannelId {
    ChannelId::new("room").unwrap()
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn message(seq: u64, body: Option<Body>) -> NewMessage {
    NewMessage {
        channel_id: ch(),
        seq: Seq(seq),
        message_id: MessageId::new(format!("m{seq}")).unwrap(),
        author_id: user("al"),
        client_msg_id: ClientMsgId::new(format!("c{seq}")).unwrap(),
        body,
        ts: 1_700_000_000_000,
    }
}

/// [`decode_event`] of a payload given as a tree.
fn decode(event: &str, payload: Option<Value>, req: ReqId) -> Result<ClientFrame, DecodeError> {
    decode_event(event, payload.map(|p| p.to_string()).as_deref(), req)
}

fn json_of(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap()
}

#[test]
fn a_contract_event_becomes_a_frame_with_the_front_s_req() {
    let frame = decode(
        "message:send",
        Some(json!({"channelId": "room", "clientMsgId": "c1", "body": {"t": 1}, "req": 99})),
        ReqId(7),
    )
    .unwrap();
    assert_eq!(frame.req(), Some(ReqId(7)));
    let ClientFrame::Send { body, .. } = frame else {
        panic!("not a send: {frame:?}");
    };
    assert_eq!(body.json(), r#"{"t":1}"#);
    // `null` in an optional field counts as absent.
    let join = decode(
        "channel:join",
        Some(json!({"channelId": "room", "epoch": null, "since": null})),
        ReqId(1),
    )
    .unwrap();
    assert!(matches!(
        join,
        ClientFrame::Join {
            epoch: None,
            since: None,
            ..
        }
    ));
}

#[test]
fn bad_events_are_invalid_for_their_request_only() {
    for (event, payload) in [
        ("hello", Some(json!({"version": 1, "token": "x"}))),
        ("ping", Some(json!({"nonce": 1}))),
        ("nope", Some(json!({}))),
        ("message:send", None),
        ("message:send", Some(json!("text"))),
        ("message:send", Some(json!({"channelId": 5}))),
        ("message:read", Some(json!({"channelId": "a", "upTo": -1}))),
        // A struct would accept a sequence: a payload must be an object.
        ("channel:join", Some(json!(["room"]))),
        ("message:send", Some(json!(null))),
    ] {
        let err = decode(event, payload, ReqId(3)).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Invalid {
                    req: Some(ReqId(3)),
                    ..
                }
            ),
            "{event}: {err:?}"
        );
    }
}

#[test]
fn a_refusal_names_the_channel_when_its_id_is_valid() {
    // The server checks the channel (policy, joined) before the field that
    // failed, so the decoder keeps a valid channel id.
    let channel = |payload| match decode("message:send", Some(payload), ReqId(4)) {
        Err(DecodeError::Invalid { channel, .. }) => channel,
        other => panic!("not invalid: {other:?}"),
    };
    assert_eq!(
        channel(json!({"channelId": "room", "clientMsgId": "", "body": 1})),
        Some(ch())
    );
    assert_eq!(
        channel(json!({"channelId": "not a channel", "clientMsgId": "c", "body": 1})),
        None
    );
    assert_eq!(channel(json!({"clientMsgId": "c", "body": 1})), None);
}

#[test]
fn acks_and_nacks_take_the_contract_shape() {
    let reply = |body: Ack| match encode_frame(&ServerFrame::Ack {
        req: ReqId(1),
        body,
    }) {
        Outgoing::Reply { body, .. } => json_of(&body),
        other => panic!("not a reply: {other:?}"),
    };
    let join = Ack::Join(JoinAck {
        channel_id: ch(),
        epoch: Epoch(1),
        head_seq: Seq(4),
        members: vec![user("al")],
        events: vec![],
        recovered: false,
    });
    assert_eq!(
        reply(join),
        json!({"ok": true, "channelId": "room", "epoch": 1, "headSeq": 4,
               "members": ["al"], "events": [], "recovered": false})
    );
    assert_eq!(reply(Ack::Leave), json!({"ok": true}));
    assert_eq!(
        reply(Ack::Read { up_to: Seq(2) }),
        json!({"ok": true, "upTo": 2})
    );
    assert_eq!(
        reply(Ack::Delete { seq: Seq(9) }),
        json!({"ok": true, "seq": 9})
    );
    let nack = encode_frame(&ServerFrame::Nack {
        req: ReqId(2),
        error: ErrorBody::new(ErrorCode::RateLimited, "slow down"),
    });
    let Outgoing::Reply { req, body } = nack else {
        panic!("not a reply");
    };
    assert_eq!(req, ReqId(2));
    assert_eq!(
        json_of(&body),
        json!({"ok": false, "error": {"code": "rate_limited", "message": "slow down", "retryable": true}})
    );
    let presence = ServerFrame::PresenceJoin(PresenceChange {
        channel_id: ch(),
        user_id: user("bo"),
    });
    let Outgoing::Event { name, payload } = encode_frame(&presence) else {
        panic!("not an event");
    };
    assert_eq!(name, "presence:join");
    assert_eq!(
        json_of(&payload),
        json!({"channelId": "room", "userId": "bo"})
    );
}

#[test]
fn a_reply_splices_bodies_as_they_arrived() {
    // Key order and number text survive: the body is never a tree.
    let body = Body::from_json(r#"{"z":1,"a":[0,0,0]}"#).unwrap();
    let page = Ack::History(HistoryAck {
        channel_id: ch(),
        epoch: Epoch(3),
        events: vec![
            LogEvent::Message(message(1, Some(body.clone()))),
            LogEvent::Message(message(2, None)),
        ],
        head_seq: Seq(2),
        more: false,
    });
    let Outgoing::Reply { body: reply, .. } = encode_frame(&ServerFrame::Ack {
        req: ReqId(5),
        body: page.clone(),
    }) else {
        panic!("not a reply");
    };
    assert!(
        reply.get().contains(r#""body":{"z":1,"a":[0,0,0]}"#),
        "{}",
        reply.get()
    );
    // A tombstone carries no body at all.
    assert_eq!(
        reply.get().matches("\"body\"").count(),
        1,
        "{}",
        reply.get()
    );
    assert_eq!(
        decode_reply(ReqId(5), "history", reply.get()).unwrap(),
        ServerFrame::Ack {
            req: ReqId(5),
            body: page
        }
    );
}

#[test]
fn every_answer_survives_the_round_trip() {
    let answers = [
        Ack::Join(JoinAck {
            channel_id: ch(),
            epoch: Epoch(7),
            head_seq: Seq(1),
            members: vec![user("al"), user("bo")],
            events: vec![LogEvent::Message(message(1, Some(Body::text("hi"))))],
            recovered: true,
        }),
        Ack::Leave,
        Ack::Send(SendAck {
            message_id: MessageId::new("m1").unwrap(),
            seq: Seq(1),
            ts: 5,
        }),
        Ack::Update { seq: Seq(2) },
        Ack::Delete { seq: Seq(3) },
        Ack::History(HistoryAck {
            channel_id: ch(),
            epoch: Epoch(7),
            events: vec![],
            head_seq: Seq(3),
            more: true,
        }),
        Ack::Read { up_to: Seq(3) },
        Ack::Typing,
    ];
    for answer in answers {
        let frame = ServerFrame::Ack {
            req: ReqId(9),
            body: answer.clone(),
        };
        let Outgoing::Reply { body, .. } = encode_frame(&frame) else {
            panic!("not a reply");
        };
        assert_eq!(
            decode_reply(ReqId(9), answer.kind(), body.get()).unwrap(),
            frame,
            "{}",
            answer.kind()
        );
    }
}

#[test]
fn every_server_event_survives_the_round_trip() {
    let frames = [
        ServerFrame::Welcome {
            version: 1,
            user_id: user("al"),
        },
        ServerFrame::MessageNew(message(1, Some(Body::text("hi")))),
        ServerFrame::MessageUpdated(MessageUpdated {
            channel_id: ch(),
            seq: Seq(2),
            message_id: MessageId::new("m1").unwrap(),
            body: Some(Body::text("edited")),
        }),
        ServerFrame::MessageDeleted(MessageDeleted {
            channel_id: ch(),
            seq: Seq(3),
            message_id: MessageId::new("m1").unwrap(),
        }),
        ServerFrame::PresenceJoin(PresenceChange {
            channel_id: ch(),
            user_id: user("bo"),
        }),
        ServerFrame::PresenceLeave(PresenceChange {
            channel_id: ch(),
            user_id: user("bo"),
        }),
        ServerFrame::Typing(TypingNotice {
            channel_id: ch(),
            user_id: user("bo"),
            active: true,
        }),
        ServerFrame::Read(ReadReceipt {
            channel_id: ch(),
            user_id: user("bo"),
            up_to: Seq(3),
        }),
    ];
    for frame in frames {
        let Outgoing::Event { name, payload } = encode_frame(&frame) else {
            panic!("not an event: {frame:?}");
        };
        assert_eq!(
            decode_server_event(name, payload.get()).unwrap(),
            Some(frame)
        );
    }
}

#[test]
fn requests_become_events_acked_by_req() {
    let send = ClientFrame::Send {
        req: ReqId(9),
        channel_id: ch(),
        client_msg_id: ClientMsgId::new("c1").unwrap(),
        body: Body::text("hi"),
    };
    let Emit::Event {
        name,
        payload,
        req,
        kind,
    } = emit(&send)
    else {
        panic!("not an event");
    };
    assert_eq!(
        (name, req, kind),
        ("message:send", Some(ReqId(9)), Some("send"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"channelId": "room", "clientMsgId": "c1", "body": "hi"})
    );
    // What a client emits, the server decodes back into the same frame.
    assert_eq!(decode_event(name, Some(&payload), ReqId(9)).unwrap(), send);
    let typing = ClientFrame::Typing {
        req: None,
        channel_id: ch(),
        active: true,
    };
    assert!(matches!(
        emit(&typing),
        Emit::Event {
            name: "typing",
            req: None,
            kind: None,
            ..
        }
    ));
    assert_eq!(
        emit(&ClientFrame::Ping { nonce: 4 }),
        Emit::Pong { nonce: 4 }
    );
}

#[test]
fn malformed_replies_and_events_are_errors() {
    assert!(decode_reply(ReqId(1), "send", r#""x""#).is_err());
    assert!(decode_reply(ReqId(1), "send", r#"{"ok": true}"#).is_err());
    assert!(decode_reply(ReqId(1), "send", r#"{"ok": false}"#).is_err());
    assert!(decode_reply(ReqId(1), "send", r#"{}"#).is_err());
    assert!(decode_reply(ReqId(1), "nope", r#"{"ok": true}"#).is_err());
    assert!(decode_reply(ReqId(1), "send", "{").is_err());
    let nack = decode_reply(
        ReqId(3),
        "join",
        r#"{"ok": false, "error": {"code": "forbidden", "message": "no", "retryable": true}}"#,
    )
    .unwrap();
    // `retryable` is recomputed from the code: a peer cannot contradict it.
    assert!(matches!(
        nack,
        ServerFrame::Nack { req: ReqId(3), ref error } if error.code == ErrorCode::Forbidden && !error.retryable
    ));
    assert_eq!(decode_server_event("other", "{}").unwrap(), None);
    assert!(decode_server_event("typing", r#"{"channelId": 1}"#).is_err());
    assert!(decode_server_event("message:new", "[").is_err());
    assert!(matches!(
        refused(UNAUTHORIZED),
        ServerFrame::Refused { ref error } if error.code == ErrorCode::Unauthorized
    ));
    assert!(matches!(
        refused("too_many_connections"),
        ServerFrame::Refused { ref error } if error.code == ErrorCode::Unavailable
    ));
}

#[test]
fn every_request_a_client_emits_decodes_back_into_its_frame() {
    // The server reads each request's fields on its own (no tree): the two
    // directions of the mapping must agree for every kind of request.
    let channel_id = ch();
    let frames = [
        ClientFrame::Join {
            req: ReqId(1),
            channel_id: channel_id.clone(),
            epoch: Some(Epoch(3)),
            since: Some(Seq(9)),
        },
        ClientFrame::Join {
            req: ReqId(1),
            channel_id: channel_id.clone(),
            epoch: None,
            since: None,
        },
        ClientFrame::Leave {
            req: ReqId(1),
            channel_id: channel_id.clone(),
        },
        ClientFrame::Send {
            req: ReqId(1),
            channel_id: channel_id.clone(),
            client_msg_id: ClientMsgId::new("c\"1").unwrap(),
            body: Body::from_json(r#"{"b":[1,2.5,null],"a":"é"}"#).unwrap(),
        },
        ClientFrame::Update {
            req: ReqId(1),
            channel_id: channel_id.clone(),
            message_id: MessageId::new("m1").unwrap(),
            body: Body::text("edited"),
        },
        ClientFrame::Delete {
            req: ReqId(1),
            channel_id: channel_id.clone(),
            message_id: MessageId::new("m1").unwrap(),
        },
        ClientFrame::History {
            req: ReqId(1),
            channel_id: channel_id.clone(),
            after: Some(Seq(4)),
            limit: Some(50),
        },
        ClientFrame::Read {
            req: ReqId(1),
            channel_id: channel_id.clone(),
            up_to: Seq(4),
        },
        ClientFrame::Typing {
            req: Some(ReqId(1)),
            channel_id,
            active: true,
        },
    ];
    let mut kinds = Vec::new();
    for frame in frames {
        let Emit::Event {
            name,
            payload,
            kind,
            ..
        } = emit(&frame)
        else {
            panic!("not an event: {frame:?}");
        };
        assert_eq!(decode_event(name, Some(&payload), ReqId(1)).unwrap(), frame);
        // The kind a reply is counted under is the kind its event carries.
        assert_eq!(request_kind(name), kind);
        kinds.extend(kind);
    }
    kinds.dedup();
    assert_eq!(kinds.len(), CLIENT_EVENTS.len(), "{kinds:?}");
    assert_eq!(request_kind("client:metrics"), None);
}
