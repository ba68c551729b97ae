//! Host tests of the mapping and batching: a [`Machine`] driven the way the
//! TypeScript driver drives it, against the core's fake server reached
//! through the server side of the same Socket.IO mapping. Batches are
//! checked as the JSON JavaScript parses.

use lockstep_core::client::FakeServer;
use lockstep_core::ids::{ChannelId, UserId};
use lockstep_core::wire::socketio::{Outgoing, SESSION_EVENT, decode_event, encode_frame};
use lockstep_core::wire::{Body, ClientFrame, ErrorCode, PROTOCOL_VERSION, ReqId, ServerFrame};
use serde_json::{Value, json};

use crate::config::WebConfig;
use crate::dto::ERROR_CODE_TS;
use crate::machine::Machine;

/// Steps one drive may take before the test calls it a livelock.
const STEPS_MAX: usize = 10_000;

fn ch(name: &str) -> ChannelId {
    ChannelId::new(name).unwrap()
}

/// The driver loop of the TypeScript package, over a fake server.
struct World {
    machine: Machine,
    server: FakeServer,
    now: f64,
    /// Whether sockets open and carry packets.
    up: bool,
    /// Whether the test answers by hand (the server stays silent).
    scripted: bool,
    /// The socket generation the server talks to.
    live: Option<u64>,
    /// Every app event, as JSON.
    events: Vec<Value>,
    /// Every socket operation, as JSON.
    transmits: Vec<Value>,
    /// Replies and events the server owes, in order.
    inbound: Vec<Inbound>,
}

enum Inbound {
    Opened(u64),
    Closed(u64),
    Event(u64, &'static str, String),
    Ack(u64, u64, String, String),
    ConnectError(u64, String),
}

impl World {
    fn new() -> World {
        World::with(WebConfig::default(), "alice")
    }

    fn with(config: WebConfig, user: &str) -> World {
        World {
            machine: Machine::new(&config, 7).unwrap(),
            server: FakeServer::new(UserId::new(user).unwrap()),
            now: 0.0,
            up: true,
            scripted: false,
            live: None,
            events: Vec::new(),
            transmits: Vec::new(),
            inbound: Vec::new(),
        }
    }

    /// Runs a call, then delivers what the server owes until quiet;
    /// returns the call's own batch as JSON.
    fn call(&mut self, f: impl FnOnce(&mut Machine, f64) -> crate::Batch) -> Value {
        let now = self.now;
        let batch = f(&mut self.machine, now);
        let first = self.apply(batch);
        for _ in 0..STEPS_MAX {
            if self.inbound.is_empty() {
                return first;
            }
            let now = self.now;
            let batch = match self.inbound.remove(0) {
                Inbound::Opened(g) => self.machine.opened(now, g as f64, Some("dev:alice".into())),
                Inbound::Closed(g) => self.machine.closed(now, g as f64, "reset"),
                Inbound::Event(g, name, payload) => {
                    self.machine.event(now, g as f64, name, &payload)
                }
                Inbound::Ack(g, req, kind, reply) => {
                    self.machine.ack(now, g as f64, req as f64, &kind, &reply)
                }
                Inbound::ConnectError(g, message) => {
                    self.machine.connect_error(now, g as f64, &message)
                }
            };
            self.apply(batch);
        }
        panic!("the drive did not settle");
    }

    /// Records a batch (as the JSON JavaScript sees) and plays the server.
    fn apply(&mut self, batch: crate::Batch) -> Value {
        // The hand writer writes what serde's derive of the same types writes.
        let text = batch.to_json();
        assert_eq!(text, serde_json::to_string(&batch).unwrap());
        let value: Value = serde_json::from_str(&text).unwrap();
        for t in value["transmits"].as_array().unwrap() {
            self.transmits.push(t.clone());
            self.serve(t);
        }
        self.events
            .extend(value["events"].as_array().unwrap().iter().cloned());
        value
    }

    fn serve(&mut self, t: &Value) {
        if self.scripted {
            return;
        }
        let generation = t["generation"].as_u64().unwrap();
        match t["type"].as_str().unwrap() {
            "open" if self.up => {
                self.server.new_connection();
                self.live = Some(generation);
                self.inbound.push(Inbound::Opened(generation));
            }
            "open" => self.inbound.push(Inbound::Closed(generation)),
            "close" => {
                if self.live == Some(generation) {
                    self.live = None;
                }
            }
            _ if !self.up || self.live != Some(generation) => {}
            "connect" => {
                let token = t["token"].as_str().unwrap().to_owned();
                let hello = ClientFrame::Hello {
                    version: PROTOCOL_VERSION,
                    token,
                };
                for frame in self.server.handle(hello) {
                    self.reply(generation, None, frame);
                }
            }
            "emit" => {
                let name = t["name"].as_str().unwrap();
                let ack = &t["ack"];
                let req = ack["req"].as_u64();
                let payload = t["payload"].to_string();
                let frame = decode_event(name, Some(&payload), ReqId(req.unwrap_or(0)))
                    .expect("the server side decodes what the client side emits");
                let kind = ack["kind"].as_str().map(str::to_owned);
                for frame in self.server.handle(frame) {
                    self.reply(generation, kind.clone(), frame);
                }
            }
            other => panic!("unknown transmit {other}"),
        }
    }

    /// Puts a server frame on the wire the way the socketioxide front does.
    fn reply(&mut self, generation: u64, kind: Option<String>, frame: ServerFrame) {
        match encode_frame(&frame) {
            Outgoing::Reply { req, body } => self.inbound.push(Inbound::Ack(
                generation,
                req.0,
                kind.expect("a reply to a request with an ack"),
                body.get().to_owned(),
            )),
            Outgoing::Event { name, payload } => {
                self.inbound
                    .push(Inbound::Event(generation, name, payload.get().to_owned()));
            }
            Outgoing::Refused(error) => self
                .inbound
                .push(Inbound::ConnectError(generation, error.message)),
            Outgoing::Nothing => {}
        }
    }

    /// Lets `ms` pass, ticking at each deadline on the way.
    fn advance(&mut self, ms: f64) {
        let target = self.now + ms;
        for _ in 0..STEPS_MAX {
            let deadline = self.call(|m, now| m.tick(now))["deadline"].as_f64();
            match deadline {
                Some(at) if at <= target && at > self.now => self.now = at,
                _ => {
                    self.now = target;
                    self.call(|m, now| m.tick(now));
                    return;
                }
            }
        }
        panic!("timers did not settle");
    }

    fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }

    fn delivered(&self) -> Vec<u64> {
        self.of_type("log")
            .iter()
            .map(|e| e["event"]["seq"].as_u64().unwrap())
            .collect()
    }

    fn connected(&mut self) {
        self.call(|m, now| m.connect(now));
        self.call(|m, now| m.subscribe(now, "general"));
        assert_eq!(
            self.of_type("subscription").last().unwrap()["state"]["status"],
            "subscribed"
        );
    }
}

#[test]
fn a_session_maps_to_socket_io_and_resolves_a_send_once() {
    let mut w = World::new();
    w.connected();
    let types: Vec<&str> = w
        .transmits
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["open", "connect", "emit"]);
    assert_eq!(w.transmits[1]["token"], "dev:alice");
    assert_eq!(
        w.transmits[2],
        json!({"type": "emit", "generation": 1, "name": "channel:join",
               "payload": {"channelId": "general"}, "ack": {"req": 1, "kind": "join"}})
    );
    let state = &w.of_type("state").last().unwrap()["state"];
    assert_eq!(
        state,
        &json!({"name": "connected", "generation": 1, "userId": "alice"})
    );
    let sub = w.of_type("subscription").last().copied().unwrap().clone();
    assert_eq!(sub["epoch"], "1", "epochs cross as strings");
    assert_eq!(sub["lastSeq"], 0);

    let sent = w.call(|m, now| m.send(now, "general", r#"{"text": "hi"}"#));
    let id = sent["result"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        sent["events"][0],
        json!({"type": "pending", "channelId": "general", "id": id,
               "command": {"kind": "send", "body": {"text": "hi"}}})
    );
    let outcomes = w.of_type("outcome");
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(
        outcomes[0]["outcome"],
        json!({"status": "sent", "seq": 1, "messageId": "m1"})
    );
    let logs = w.of_type("log");
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["event"]["clientMsgId"], id.as_str());
    assert_eq!(logs[0]["event"]["body"], json!({"text": "hi"}));
    assert!(sent["deadline"].is_number(), "a request timer is armed");
}

#[test]
fn op_ids_cross_as_strings_that_keep_all_64_bits() {
    let mut w = World::new();
    w.connected();
    w.call(|m, now| m.send(now, "general", "\"x\""));
    let upd = w.call(|m, now| m.update(now, "general", "m1", "\"y\""));
    let id = upd["result"]["id"].as_str().expect("a string id");
    let op: u64 = id.parse().unwrap();
    assert!(op > (1 << 53), "the instance id fills the high bits: {op}");
    let outcome = w.of_type("outcome").last().copied().unwrap().clone();
    assert_eq!(outcome["id"], id);
    assert_eq!(outcome["outcome"], json!({"status": "applied", "seq": 2}));
    assert_eq!(w.of_type("log").last().unwrap()["event"]["type"], "updated");
}

#[test]
fn a_reconnect_recovers_the_missed_messages_in_order_once() {
    let mut w = World::new();
    w.connected();
    let bob = UserId::new("bob").unwrap();
    w.server
        .post(&ch("general"), &bob, Body::text("1"))
        .unwrap();
    w.inbound.push(Inbound::Event(1, "message:new", {
        let ServerFrame::MessageNew(m) = w
            .server
            .post(&ch("general"), &bob, Body::text("2"))
            .unwrap()
        else {
            unreachable!()
        };
        serde_json::to_string(&m).unwrap()
    }));
    w.call(|m, now| m.tick(now));
    // The broadcast of #2 came before #1 was known: #1 is fetched first.
    assert_eq!(w.delivered(), vec![1, 2]);
    w.up = false;
    w.call(|m, now| m.closed(now, 1.0, "transport close"));
    for i in 3..=5 {
        w.server
            .post(&ch("general"), &bob, Body::text(i.to_string()));
    }
    w.advance(5_000.0);
    assert!(w.delivered().len() == 2, "offline: nothing new");
    w.up = true;
    w.advance(60_000.0);
    assert_eq!(w.delivered(), vec![1, 2, 3, 4, 5]);
    let join = w
        .transmits
        .iter()
        .rfind(|t| t["name"] == "channel:join")
        .unwrap();
    assert_eq!(
        join["payload"],
        json!({"channelId": "general", "epoch": 1, "since": 2})
    );
}

#[test]
fn events_of_an_old_socket_are_ignored() {
    let mut w = World::new();
    w.connected();
    w.call(|m, now| m.closed(now, 1.0, "reset"));
    w.advance(60_000.0);
    let before = w.events.len();
    let payload = r#"{"channelId":"general","seq":1,"messageId":"m9","authorId":"bob","clientMsgId":"x","body":"late","ts":1}"#;
    w.call(|m, now| m.event(now, 1.0, "message:new", payload));
    w.call(|m, now| m.event(now, f64::NAN, "message:new", payload));
    assert_eq!(w.events.len(), before, "{:?}", &w.events[before..]);
}

#[test]
fn a_forbidden_join_is_a_failed_subscription_and_fails_its_sends() {
    let mut w = World::new();
    w.call(|m, now| m.connect(now));
    w.scripted = true; // the script answers this join by hand
    w.call(|m, now| m.subscribe(now, "private:bob"));
    let join = w.transmits.last().unwrap().clone();
    let req = join["ack"]["req"].as_f64().unwrap();
    let sent = w.call(|m, now| m.send(now, "private:bob", "\"hi\""));
    let id = sent["result"]["id"].as_str().unwrap().to_owned();
    let nack =
        r#"{"ok":false,"error":{"code":"forbidden","message":"not yours","retryable":false}}"#;
    w.call(|m, now| m.ack(now, 1.0, req, "join", nack));
    let sub = w.of_type("subscription").last().copied().unwrap().clone();
    assert_eq!(
        sub["state"],
        json!({"status": "failed", "code": "forbidden"})
    );
    let outcome = w.of_type("outcome").last().copied().unwrap().clone();
    assert_eq!(outcome["id"], id.as_str());
    assert_eq!(outcome["outcome"]["status"], "failed");
    assert_eq!(outcome["outcome"]["reason"], "subscription_failed");
    assert_eq!(outcome["outcome"]["code"], "forbidden");
    let again = w.call(|m, now| m.send(now, "private:bob", "\"hi\""));
    assert_eq!(again["result"]["error"]["kind"], "subscription_failed");
}

#[test]
fn an_unauthorized_handshake_fails_the_connection_for_good() {
    let mut w = World::new();
    w.scripted = true;
    w.call(|m, now| m.connect(now));
    w.call(|m, now| m.connect_error(now, 1.0, "unauthorized"));
    let state = &w.of_type("state").last().unwrap()["state"];
    assert_eq!(state["name"], "failed");
    assert_eq!(state["reason"], "unauthorized");
    assert_eq!(w.transmits.last().unwrap()["type"], "close");
    assert_eq!(w.machine.inspect().armed_timers, 0);
}

#[test]
fn a_restored_outbox_waits_for_its_channel_then_is_sent_once() {
    // A first machine queues two sends while offline, then is lost.
    let mut a = World::new();
    a.up = false;
    a.call(|m, now| m.connect(now));
    a.call(|m, now| m.subscribe(now, "general"));
    let first = a.call(|m, now| m.send(now, "general", "\"one\""))["result"]["id"].clone();
    a.call(|m, now| m.send(now, "general", "\"two\""));
    let snapshot = a.machine.export_outbox();

    // A new machine restores before the app subscribed: held, not failed.
    let mut b = World::new();
    b.call(|m, now| m.connect(now));
    let restored = b.call(|m, now| m.restore_outbox(now, &snapshot));
    assert_eq!(restored["result"], json!({}));
    assert!(b.of_type("outcome").is_empty());
    assert_eq!(b.machine.inspect().held, 2);
    assert_eq!(
        b.machine.export_outbox(),
        snapshot,
        "held entries are still persisted"
    );
    // Restoring the same snapshot again adds nothing.
    b.call(|m, now| m.restore_outbox(now, &snapshot));
    assert_eq!(b.machine.inspect().held, 2);

    let sub = b.call(|m, now| m.subscribe(now, "general"));
    let pending: Vec<&Value> = sub["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0]["id"], first);
    let outcomes = b.of_type("outcome");
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0]["id"], first);
    assert_eq!(outcomes[0]["outcome"]["seq"], 1);
    assert_eq!(b.delivered(), vec![1, 2]);
    assert_eq!(b.machine.inspect().held, 0);
    assert_eq!(b.machine.inspect().outbox, 0);
}

#[test]
fn unsubscribing_fails_held_entries_and_bad_snapshots_are_refused() {
    let mut a = World::new();
    a.call(|m, now| m.subscribe(now, "general"));
    a.call(|m, now| m.send(now, "general", "1"));
    let snapshot = a.machine.export_outbox();
    let mut b = World::new();
    b.call(|m, now| m.restore_outbox(now, &snapshot));
    b.call(|m, now| m.unsubscribe(now, "general"));
    let outcome = b.of_type("outcome")[0].clone();
    assert_eq!(outcome["outcome"]["reason"], "unsubscribed");
    assert_eq!(b.machine.inspect().held, 0);

    let bad = b.call(|m, now| m.restore_outbox(now, "{\"version\":1}"));
    assert_eq!(bad["result"]["error"]["kind"], "invalid");
    let old = b.call(|m, now| m.restore_outbox(now, r#"{"version":99,"entries":[]}"#));
    assert_eq!(old["result"]["error"]["kind"], "version");
    let small = WebConfig {
        outbox_max: Some(1),
        ..WebConfig::default()
    };
    let mut c = World::with(small, "alice");
    let two = a.machine.export_outbox().replace(
        "]}",
        &format!(",{}]}}", {
            let v: Value = serde_json::from_str(&snapshot).unwrap();
            let mut e = v["entries"][0].clone();
            e["command"]["clientMsgId"] = json!("other-1");
            e
        }),
    );
    let full = c.call(|m, now| m.restore_outbox(now, &two));
    assert_eq!(full["result"]["error"]["kind"], "outbox_full");
}

#[test]
fn bad_arguments_are_typed_refusals_and_bad_packets_protocol_events() {
    let mut w = World::new();
    w.connected();
    let r = w.call(|m, now| m.send(now, "no spaces", "1"));
    assert_eq!(r["result"]["error"]["kind"], "invalid");
    let r = w.call(|m, now| m.send(now, "general", "{not json"));
    assert_eq!(r["result"]["error"]["kind"], "invalid");
    let r = w.call(|m, now| m.send(now, "elsewhere", "1"));
    assert_eq!(r["result"]["error"]["kind"], "not_subscribed");
    let r = w.call(|m, now| m.mark_read(now, "general", -1.0));
    assert_eq!(r["result"]["error"]["kind"], "invalid");
    let r = w.call(|m, now| m.subscribe_from(now, "general", "e1", 3.0));
    assert_eq!(r["result"]["error"]["kind"], "invalid");

    let huge = format!("\"{}\"", "x".repeat(lockstep_core::wire::MAX_FRAME_BYTES));
    let r = w.call(|m, now| m.event(now, 1.0, "message:new", &huge));
    assert!(
        r["events"][0]["message"]
            .as_str()
            .unwrap()
            .contains("exceeds"),
        "{r}"
    );
    let r = w.call(|m, now| m.event(now, 1.0, "message:new", "{\"channelId\":3}"));
    assert_eq!(r["events"][0]["type"], "protocol");
    let r = w.call(|m, now| m.event(now, 1.0, "not:ours", "{}"));
    assert!(
        r["events"].as_array().unwrap().is_empty(),
        "unknown events are ignored"
    );
    let r = w.call(|m, now| m.ack(now, 1.0, 999.0, "send", r#"{"ok":true}"#));
    assert_eq!(r["events"][0]["type"], "protocol");
}

#[test]
fn time_never_goes_backwards_and_close_leaves_nothing_armed() {
    let mut w = World::new();
    w.now = 10_000.0;
    w.connected();
    let sent = w.call(|m, _| m.send(5.0, "general", "1"));
    // The request timer runs from 10 s (the latest now), not from 5 ms.
    let deadline = sent["deadline"].as_f64().unwrap();
    assert!(deadline >= 10_000.0, "{deadline}");
    w.call(|m, now| m.close(now));
    let inspected = w.machine.inspect();
    assert_eq!(
        (
            inspected.state,
            inspected.armed_timers,
            inspected.pending_requests
        ),
        ("closed", 0, 0)
    );
    assert_eq!(w.transmits.last().unwrap()["type"], "close");
    let r = w.call(|m, now| m.send(now, "general", "1"));
    assert_eq!(r["result"]["error"]["kind"], "closed");
    assert!(r["deadline"].is_null());
}

#[test]
fn a_token_given_on_open_goes_out_with_the_connect() {
    let mut w = World::new();
    w.scripted = true;
    w.call(|m, now| m.connect(now));
    w.call(|m, now| m.opened(now, 2.0, Some("ignored".into())));
    let t = w.call(|m, now| m.opened(now, 1.0, Some("fresh-token".into())));
    assert_eq!(
        t["transmits"][0],
        json!({"type": "connect", "generation": 1, "token": "fresh-token"})
    );
}

#[test]
fn the_typescript_error_code_type_names_every_code() {
    for code in ErrorCode::ALL {
        assert!(
            ERROR_CODE_TS.contains(&format!("\"{}\"", code.as_str())),
            "{code}"
        );
    }
}

#[test]
fn the_session_event_is_the_welcome() {
    let mut w = World::new();
    w.scripted = true;
    w.call(|m, now| m.connect(now));
    w.call(|m, now| m.opened(now, 1.0, None));
    let r = w.call(|m, now| m.event(now, 1.0, SESSION_EVENT, r#"{"userId":"zoe","version":1}"#));
    assert_eq!(r["events"][0]["state"]["userId"], "zoe");
}

/// The `type` of each app event of a batch.
fn kinds(batch: &Value) -> Vec<&str> {
    batch["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

/// A burst as the driver hands it over: the packets' UTF-8 text one after
/// another and the byte length of each.
fn burst(packets: &[Value]) -> (Vec<u8>, Vec<u32>) {
    let texts: Vec<String> = packets.iter().map(Value::to_string).collect();
    let lengths = texts
        .iter()
        .map(|t| u32::try_from(t.len()).unwrap())
        .collect();
    (texts.concat().into_bytes(), lengths)
}

#[test]
fn a_burst_of_events_is_one_call_in_order() {
    let mut w = World::new();
    w.connected();
    let msg = |seq: u64| {
        json!(["message:new", {"channelId": "general", "seq": seq, "messageId": format!("m{seq}"),
            "authorId": "bob", "clientMsgId": format!("b{seq}"), "body": format!("é{seq}"), "ts": 1}])
    };
    let (text, lengths) = burst(&[msg(2), msg(1), json!(["not:ours", {}]), msg(3), msg(4)]);
    let r = w.call(|m, now| m.events(now, 1.0, &text, &lengths));
    // Each delivery names the packet it was: #1 (index 1), then the early
    // #2 (index 0), then #3 and #4 (indexes 3 and 4: one run).
    assert_eq!(
        r["events"],
        json!([
            {"type": "logRef", "channelId": "general", "index": 1, "count": 1},
            {"type": "logRef", "channelId": "general", "index": 0, "count": 1},
            {"type": "logRef", "channelId": "general", "index": 3, "count": 2},
        ])
    );
    // Delivered from the buffer of an earlier call: encoded in full.
    let (early, early_lengths) = burst(&[msg(6)]);
    let r = w.call(|m, now| m.events(now, 1.0, &early, &early_lengths));
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "logRef")
    );
    let (next, next_lengths) = burst(&[msg(5)]);
    let r = w.call(|m, now| m.events(now, 1.0, &next, &next_lengths));
    let seen = kinds(&r);
    assert!(seen.ends_with(&["logRef", "log"]), "{seen:?}");
    assert_eq!(
        r["events"].as_array().unwrap().last().unwrap()["event"]["seq"],
        6
    );
    // Lengths that do not split the text: one protocol error.
    let r = w.call(|m, now| m.events(now, 1.0, b"[1, 2", &[2]));
    assert_eq!(r["events"][0]["type"], "protocol");
    // A packet that does not decode is an error of its own; the rest of
    // the burst is delivered.
    let (mixed, mixed_lengths) = burst(&[json!(["message:new", {"seq": "x"}]), msg(7)]);
    let r = w.call(|m, now| m.events(now, 1.0, &mixed, &mixed_lengths));
    let seen = kinds(&r);
    assert!(seen.contains(&"protocol"), "{seen:?}");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "logRef", "channelId": "general", "index": 1, "count": 1})),
        "{r}"
    );
    let r = w.call(|m, now| m.events(now, 7.0, &text, &lengths));
    assert!(
        r["events"].as_array().unwrap().is_empty(),
        "a stale socket's burst is ignored"
    );
}
