//! The Socket.IO front's decoding from arbitrary events, both directions:
//! what the server reads from a client's event and what a client reads
//! from the server's replies and events.
//!
//! Properties: decoding never panics; a refused event names its request
//! (so the front answers exactly that ack); an accepted event keeps its
//! request id and survives the client's own mapping back and forth.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockstep_core::wire::ReqId;
use lockstep_core::wire::socketio::{
    CLIENT_EVENTS, Emit, REQUESTS, SERVER_EVENTS, decode_event, decode_reply,
    decode_server_event, emit,
};

/// One event as a hostile peer may shape it.
#[derive(Debug, Arbitrary)]
struct Input {
    /// A contract event (an index into the lists) or, past them, `name`.
    event: u8,
    name: String,
    /// The first argument; `None` for an event without one.
    payload: Option<Payload>,
    req: u64,
}

/// A payload: any text, or an object over the contract's field names
/// with values of any shape, so decoding gets past "not an object".
#[derive(Debug, Arbitrary)]
enum Payload {
    Text(String),
    Object(Vec<(Key, Val)>),
}

/// The field names of the requests, and any other.
#[derive(Debug, Arbitrary)]
enum Key {
    Known(u8),
    Other(String),
}

/// A field's value.
#[derive(Debug, Arbitrary)]
enum Val {
    Str(String),
    Int(i64),
    Big(u64),
    Float(f64),
    Bool(bool),
    Null,
    /// Unescaped text: valid JSON or not.
    Raw(String),
    Ints(Vec<i32>),
}

const KEYS: [&str; 11] = [
    "channelId",
    "clientMsgId",
    "body",
    "messageId",
    "epoch",
    "since",
    "after",
    "limit",
    "upTo",
    "active",
    "type",
];

impl Payload {
    fn text(&self) -> String {
        let fields = match self {
            Payload::Text(text) => return text.clone(),
            Payload::Object(fields) => fields,
        };
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        let fields: Vec<String> = fields
            .iter()
            .map(|(key, val)| {
                let key = match key {
                    Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_owned(),
                    Key::Other(s) => s.clone(),
                };
                let val = match val {
                    Val::Str(s) => quote(s),
                    Val::Int(n) => n.to_string(),
                    Val::Big(n) => n.to_string(),
                    Val::Float(f) => serde_json::Value::from(*f).to_string(),
                    Val::Bool(b) => b.to_string(),
                    Val::Null => "null".into(),
                    Val::Raw(s) => s.clone(),
                    Val::Ints(v) => serde_json::Value::from(v.clone()).to_string(),
                };
                format!("{}:{val}", quote(&key))
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

fn pick<'a>(names: &[&'a str], i: u8, other: &'a str) -> &'a str {
    names.get(usize::from(i)).copied().unwrap_or(other)
}

fuzz_target!(|input: Input| {
    let req = ReqId(input.req);
    let text = input.payload.as_ref().map(Payload::text);
    let payload = text.as_deref();

    // Server side: a client's event.
    let name = pick(&CLIENT_EVENTS, input.event % 12, &input.name);
    match decode_event(name, payload, req) {
        Err(error) => assert_eq!(error.req(), Some(req), "a refusal names its request"),
        Ok(frame) => {
            assert_eq!(frame.req(), Some(req), "the frame keeps its request id");
            let Emit::Event {
                name: again,
                payload: text,
                req: Some(r),
                ..
            } = emit(&frame)
            else {
                panic!("{frame:?} is not an event with an ack");
            };
            assert_eq!((again, r), (name, req));
            assert_eq!(
                decode_event(again, Some(&text), r).ok().as_ref(),
                Some(&frame),
                "{text} does not decode to the frame it came from"
            );
        }
    }

    // Client side: the server's reply to a request, and its events.
    if let Some(text) = payload {
        let kinds: Vec<&str> = REQUESTS.iter().map(|(_, kind)| *kind).collect();
        let _ = decode_reply(req, pick(&kinds, input.event % 10, &input.name), text);
        let _ = decode_server_event(pick(&SERVER_EVENTS, input.event % 10, &input.name), text);
    }
});
