//! A test harness: one client, an explicit clock, a scripted or fake peer,
//! a bounded drive and a readable trace.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Instant;
use crate::client::{
    Client, ClientConfig, ClientEvent, FakeServer, Outcome, Transmit, TransportEvent,
};
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::{
    Ack, Body, ClientFrame, ErrorBody, ErrorCode, JoinAck, LogEvent, NewMessage, ReqId,
    ServerFrame, encode_client, encode_server,
};

/// Steps one drive may take before the harness declares a livelock.
const DRIVE_STEPS_MAX: usize = 10_000;

/// Who answers the client.
pub(crate) enum Peer {
    /// The test answers by hand; transmits collect in `sent`.
    Scripted,
    /// A fake server answers at once while `net_up`.
    Fake(FakeServer),
}

pub(crate) struct Harness {
    pub(crate) now: Instant,
    pub(crate) client: Client,
    pub(crate) peer: Peer,
    /// Whether transports can be opened and carry frames (fake peer only).
    pub(crate) net_up: bool,
    /// The latest generation the client asked to open.
    pub(crate) generation: u64,
    /// Generations the client asked to open, in order.
    pub(crate) opens: Vec<u64>,
    /// Frames the client sent that the script has not consumed yet.
    pub(crate) sent: VecDeque<ClientFrame>,
    /// Every event the client emitted.
    pub(crate) events: Vec<ClientEvent>,
    inbound: VecDeque<TransportEvent>,
    trace: Vec<String>,
}

pub(crate) fn ch(name: &str) -> ChannelId {
    ChannelId::new(name).unwrap()
}

pub(crate) fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub(crate) fn msg(channel: &str, seq: u64, author: &str, cmid: &str, text: &str) -> LogEvent {
    LogEvent::Message(NewMessage {
        channel_id: ch(channel),
        seq: Seq(seq),
        message_id: MessageId::new(format!("m{seq}")).unwrap(),
        author_id: user(author),
        client_msg_id: ClientMsgId::new(cmid).unwrap(),
        body: Some(Body::text(text)),
        ts: 1_700_000_000_000 + seq,
    })
}

pub(crate) fn join_ack(
    req: ReqId,
    channel: &str,
    epoch: u64,
    head: u64,
    events: Vec<LogEvent>,
    recovered: bool,
) -> ServerFrame {
    ServerFrame::Ack {
        req,
        body: Ack::Join(JoinAck {
            channel_id: ch(channel),
            epoch: Epoch(epoch),
            head_seq: Seq(head),
            members: vec![user("alice"), user("bob")],
            events,
            recovered,
        }),
    }
}

pub(crate) fn nack(req: ReqId, code: ErrorCode) -> ServerFrame {
    ServerFrame::Nack {
        req,
        error: ErrorBody::new(code, code.as_str()),
    }
}

impl Harness {
    /// A client with default config and a hand-scripted peer.
    pub(crate) fn scripted() -> Self {
        Self::with(ClientConfig::default(), Peer::Scripted)
    }

    /// A client against a fake server that knows it as `alice`.
    pub(crate) fn fake() -> Self {
        Self::with(
            ClientConfig::default(),
            Peer::Fake(FakeServer::new(user("alice"))),
        )
    }

    pub(crate) fn with(config: ClientConfig, peer: Peer) -> Self {
        Harness {
            now: Instant::ZERO,
            client: Client::new(config, "dev:alice".into(), 7),
            peer,
            net_up: true,
            generation: 0,
            opens: Vec::new(),
            sent: VecDeque::new(),
            events: Vec::new(),
            inbound: VecDeque::new(),
            trace: Vec::new(),
        }
    }

    pub(crate) fn server(&mut self) -> &mut FakeServer {
        match &mut self.peer {
            Peer::Fake(s) => s,
            Peer::Scripted => panic!("this harness has a scripted peer"),
        }
    }

    pub(crate) fn note(&mut self, text: &str) {
        self.trace
            .push(format!("{:>8}  -- {text}", self.now.to_string()));
    }

    fn line(&mut self, arrow: &str, text: String) {
        self.trace
            .push(format!("{:>8}  {arrow} {text}", self.now.to_string()));
    }

    /// The trace so far, one line per step.
    pub(crate) fn trace(&self) -> String {
        self.trace.join("\n")
    }

    /// Runs an app command, then drains.
    pub(crate) fn act<R>(&mut self, what: &str, f: impl FnOnce(&mut Client, Instant) -> R) -> R {
        self.note(what);
        let now = self.now;
        let r = f(&mut self.client, now);
        self.drain();
        r
    }

    /// Delivers a transport event to the client, then drains.
    pub(crate) fn input(&mut self, event: TransportEvent) {
        self.inbound.push_back(event);
        self.drain();
    }

    /// The latest transport opened.
    pub(crate) fn opened(&mut self) {
        self.input(TransportEvent::Opened {
            generation: self.generation,
        });
    }

    /// A frame from the peer on the latest transport.
    pub(crate) fn reply(&mut self, frame: ServerFrame) {
        self.input(TransportEvent::Frame {
            generation: self.generation,
            frame,
        });
    }

    /// The latest transport closed under the client.
    pub(crate) fn drop_transport(&mut self) {
        let generation = self.generation;
        if let Peer::Fake(s) = &mut self.peer {
            s.new_connection();
        }
        self.input(TransportEvent::Closed {
            generation,
            reason: "reset".into(),
        });
    }

    /// Opens and completes the handshake (scripted peer).
    pub(crate) fn handshake(&mut self) {
        self.opened();
        let hello = self.take();
        assert!(matches!(hello, ClientFrame::Hello { .. }), "{hello:?}");
        self.reply(ServerFrame::Welcome {
            version: crate::wire::PROTOCOL_VERSION,
            user_id: user("alice"),
        });
    }

    /// Connects, completes the handshake and subscribes to `channel`:
    /// returns the join's request id (its reply is the test's to give).
    pub(crate) fn connect_and_subscribe(&mut self, channel: &str) -> ReqId {
        self.act("connect", |c, now| c.connect(now));
        self.handshake();
        self.act("subscribe", |c, now| c.subscribe(now, ch(channel)).unwrap());
        self.take_req()
    }

    /// The transport drops, the backoff passes, the handshake completes:
    /// returns the first frame of the new connection (the re-join).
    pub(crate) fn reconnect(&mut self) -> ClientFrame {
        self.drop_transport();
        self.advance(2_000);
        self.handshake();
        self.take()
    }

    /// The oldest frame the client sent that the script has not taken.
    pub(crate) fn take(&mut self) -> ClientFrame {
        self.sent.pop_front().expect("the client sent nothing more")
    }

    /// Takes the next frame and returns its request id.
    pub(crate) fn take_req(&mut self) -> ReqId {
        let f = self.take();
        f.req().unwrap_or_else(|| panic!("{f:?} has no req"))
    }

    /// Drains the client until it and the peer are quiet. Bounded.
    pub(crate) fn drain(&mut self) {
        for _ in 0..DRIVE_STEPS_MAX {
            while let Some(t) = self.client.poll_transmit() {
                self.on_transmit(t);
            }
            while let Some(e) = self.client.poll_event() {
                self.line("ev", fmt_event(&e));
                self.events.push(e);
            }
            let Some(input) = self.inbound.pop_front() else {
                return;
            };
            self.line("<-", fmt_input(&input));
            self.client.handle_transport(self.now, input);
        }
        panic!(
            "drive did not settle within {DRIVE_STEPS_MAX} steps\n{}",
            self.trace()
        );
    }

    fn on_transmit(&mut self, t: Transmit) {
        match &t {
            Transmit::Open { generation } => {
                self.line("->", format!("open g{generation}"));
                self.generation = *generation;
                self.opens.push(*generation);
            }
            Transmit::Frame { generation, frame } => {
                let json = String::from_utf8(encode_client(frame)).unwrap();
                self.line("->", format!("[g{generation}] {json}"));
            }
            Transmit::Close { generation, reason } => {
                self.line("->", format!("close g{generation} ({reason})"));
            }
        }
        match (&mut self.peer, t) {
            (Peer::Scripted, Transmit::Frame { frame, .. }) => self.sent.push_back(frame),
            (Peer::Scripted, _) => {}
            (Peer::Fake(server), Transmit::Open { generation }) => {
                if self.net_up {
                    server.new_connection();
                    self.inbound
                        .push_back(TransportEvent::Opened { generation });
                } else {
                    self.inbound.push_back(TransportEvent::Closed {
                        generation,
                        reason: "unreachable".into(),
                    });
                }
            }
            (Peer::Fake(server), Transmit::Frame { generation, frame }) => {
                if self.net_up && generation == self.generation {
                    for reply in server.handle(frame) {
                        self.inbound.push_back(TransportEvent::Frame {
                            generation,
                            frame: reply,
                        });
                    }
                }
            }
            (Peer::Fake(_), Transmit::Close { .. }) => {}
        }
    }

    /// Lets `ms` of virtual time pass, firing timers on the way. Bounded.
    pub(crate) fn advance(&mut self, ms: u64) {
        let target = self.now.saturating_add(Duration::from_millis(ms));
        for _ in 0..DRIVE_STEPS_MAX {
            match self.client.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.line("~~", "timer".into());
                    self.client.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!(
            "timers did not settle within {DRIVE_STEPS_MAX} steps\n{}",
            self.trace()
        );
    }

    /// The outcomes the client reported, in order.
    pub(crate) fn outcomes(&self) -> Vec<(String, Outcome)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Outcome { id, outcome, .. } => {
                    Some((format!("{id:?}"), outcome.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The seqs delivered for `channel`, in order.
    pub(crate) fn delivered(&self, channel: &str) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Log { channel: c, event } if c.as_str() == channel => {
                    Some(event.seq().0)
                }
                _ => None,
            })
            .collect()
    }
}

fn fmt_input(input: &TransportEvent) -> String {
    match input {
        TransportEvent::Opened { generation } => format!("[g{generation}] opened"),
        TransportEvent::Frame { generation, frame } => {
            format!(
                "[g{generation}] {}",
                String::from_utf8(encode_server(frame)).unwrap()
            )
        }
        TransportEvent::Undecodable { generation, error } => {
            format!("[g{generation}] undecodable: {error}")
        }
        TransportEvent::Closed { generation, reason } => {
            format!("[g{generation}] closed: {reason}")
        }
    }
}

/// One readable line per event.
pub(crate) fn fmt_event(e: &ClientEvent) -> String {
    match e {
        ClientEvent::State(s) => format!("state {s:?}"),
        ClientEvent::Subscription { channel, state } => format!("sub {channel} {state:?}"),
        ClientEvent::Log { channel, event } => match event {
            LogEvent::Message(m) => format!(
                "log {channel} {} message {} by {} ({}) {}",
                m.seq,
                m.message_id,
                m.author_id,
                m.client_msg_id,
                body_text(m.body.as_ref())
            ),
            LogEvent::Updated(u) => format!(
                "log {channel} {} updated {} {}",
                u.seq,
                u.message_id,
                body_text(u.body.as_ref())
            ),
            LogEvent::Deleted(d) => format!("log {channel} {} deleted {}", d.seq, d.message_id),
        },
        ClientEvent::Outcome {
            channel,
            id,
            outcome,
        } => format!("outcome {channel} {id:?} {outcome:?}"),
        ClientEvent::Truncated { channel, from, to } => {
            format!("truncated {channel} {from}..={to}")
        }
        ClientEvent::Reset { channel, epoch } => format!("reset {channel} {epoch}"),
        ClientEvent::Members { channel, members } => format!("members {channel} {members:?}"),
        ClientEvent::MemberJoined { channel, user } => format!("member+ {channel} {user}"),
        ClientEvent::MemberLeft { channel, user } => format!("member- {channel} {user}"),
        ClientEvent::Typing {
            channel,
            user,
            active,
        } => format!("typing {channel} {user} {active}"),
        ClientEvent::Read {
            channel,
            user,
            up_to,
        } => format!("read {channel} {user} {up_to}"),
        ClientEvent::Protocol(err) => format!("protocol error: {err}"),
    }
}

/// A body as traces print it: its JSON, or `-` for a replay's tombstone.
fn body_text(body: Option<&Body>) -> String {
    body.map_or_else(|| "-".to_owned(), |b| format!("{b:?}"))
}
