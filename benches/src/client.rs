//! A client brought to `Connected` + `Subscribed` by a scripted handshake
//! against the core's [`FakeServer`], and the frame streams fed to it.

use lockstep_core::Instant;
use lockstep_core::client::{
    Client, ClientConfig, ClientEvent, FakeServer, Transmit, TransportEvent,
};
use lockstep_core::ids::{ChannelId, Seq, UserId};
use lockstep_core::wire::{Ack, Body, ClientFrame, SendAck, ServerFrame};

use crate::frames::{channel, message, typical_body, user};

/// Most exchanges the scripted handshake may take: a fixture never hangs.
const SCRIPT_STEPS_MAX: usize = 1_000;

/// A client joined to [`channel`] on a live transport, with its peer.
#[derive(Debug)]
pub struct Subscribed {
    /// The machine under measurement.
    pub client: Client,
    /// The live transport's generation (frames must carry it).
    pub generation: u64,
    /// The time the fixture runs at (benches never advance it).
    pub now: Instant,
    /// Our identity, as the fake server welcomed it.
    pub me: UserId,
}

/// The order in which a bench feeds `message:new` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Seq 1, 2, 3, ...: the common case.
    InOrder,
    /// Blocks of 8 reversed (8, 7, ..., 1, 16, 15, ...): every block opens
    /// a gap that the buffer closes.
    OutOfOrder,
    /// Every frame twice (1, 1, 2, 2, ...): the second copy is dropped.
    Duplicated,
}

impl Subscribed {
    /// Connects, shakes hands and joins [`channel`] (an empty log).
    #[must_use]
    pub fn new() -> Self {
        let now = Instant::from_millis(1_000);
        let me = user("me");
        let mut server = FakeServer::new(me.clone());
        let mut client = Client::new(ClientConfig::default(), "token".into(), 42);
        client.connect(now);
        let generation = script(&mut client, &mut server, now);
        let _ = client.subscribe(now, channel());
        let _ = script(&mut client, &mut server, now);
        while client.poll_event().is_some() {}
        Subscribed {
            client,
            generation,
            now,
            me,
        }
    }

    /// `count` `message:new` frames by another user, seqs `after+1..`,
    /// wrapped as transport events in the order `arrival` says.
    #[must_use]
    pub fn inbound(&self, after: Seq, count: u64, arrival: Arrival) -> Vec<TransportEvent> {
        let author = user("alice");
        let body = typical_body();
        let seqs: Vec<u64> = (after.0 + 1..=after.0 + count).collect();
        let order: Vec<u64> = match arrival {
            Arrival::InOrder => seqs,
            Arrival::OutOfOrder => seqs
                .chunks(8)
                .flat_map(|c| c.iter().rev().copied())
                .collect(),
            Arrival::Duplicated => seqs.iter().flat_map(|&s| [s, s]).collect(),
        };
        order
            .into_iter()
            .map(|s| TransportEvent::Frame {
                generation: self.generation,
                frame: ServerFrame::MessageNew(message(s, &author, &body)),
            })
            .collect()
    }

    /// Feeds every event and drains what the client says, as a driver
    /// would; returns how many log events the app received.
    pub fn feed(&mut self, events: Vec<TransportEvent>) -> usize {
        let mut delivered = 0;
        for e in events {
            self.client.handle_transport(self.now, e);
            while self.client.poll_transmit().is_some() {}
            while let Some(ev) = self.client.poll_event() {
                delivered += usize::from(matches!(ev, ClientEvent::Log { .. }));
            }
        }
        delivered
    }
}

impl Default for Subscribed {
    fn default() -> Self {
        Subscribed::new()
    }
}

/// Plays the fake server against the client until neither has anything to
/// say; returns the generation of the last transport opened.
fn script(client: &mut Client, server: &mut FakeServer, now: Instant) -> u64 {
    let mut generation = 0;
    for _ in 0..SCRIPT_STEPS_MAX {
        let Some(t) = client.poll_transmit() else {
            break;
        };
        match t {
            Transmit::Open { generation: g } => {
                generation = g;
                server.new_connection();
                client.handle_transport(now, TransportEvent::Opened { generation: g });
            }
            Transmit::Frame {
                generation: g,
                frame,
            } => {
                for reply in server.handle(frame) {
                    client.handle_transport(
                        now,
                        TransportEvent::Frame {
                            generation: g,
                            frame: reply,
                        },
                    );
                }
            }
            Transmit::Close { .. } => {}
        }
    }
    generation
}

/// A subscribed client whose outbox sends and is acknowledged in batches,
/// the way a busy sender's is: sends go out pipelined, then acks and the
/// broadcast copies of its own messages come back.
#[derive(Debug)]
pub struct SendLoop {
    fixture: Subscribed,
    body: Body,
    next_seq: u64,
}

impl SendLoop {
    /// A loop on a fresh subscribed client.
    #[must_use]
    pub fn new() -> Self {
        SendLoop {
            fixture: Subscribed::new(),
            body: typical_body(),
            next_seq: 1,
        }
    }

    /// Sends `batch` messages, answers each with its ack and its broadcast
    /// copy, and drains the events; returns the outcomes received.
    pub fn cycle(&mut self, batch: usize) -> usize {
        let f = &mut self.fixture;
        let ch: ChannelId = channel();
        for _ in 0..batch {
            let _ = f.client.send(f.now, ch.clone(), self.body.clone());
        }
        let mut replies = Vec::with_capacity(batch * 2);
        while let Some(t) = f.client.poll_transmit() {
            if let Transmit::Frame {
                frame:
                    ClientFrame::Send {
                        req,
                        client_msg_id,
                        body,
                        ..
                    },
                ..
            } = t
            {
                let seq = Seq(self.next_seq);
                self.next_seq += 1;
                let mut m = message(seq.0, &f.me, &body);
                m.client_msg_id = client_msg_id;
                let ack = SendAck {
                    message_id: m.message_id.clone(),
                    seq,
                    ts: m.ts,
                };
                replies.push(ServerFrame::Ack {
                    req,
                    body: Ack::Send(ack),
                });
                replies.push(ServerFrame::MessageNew(m));
            }
        }
        let mut outcomes = 0;
        for frame in replies {
            f.client.handle_transport(
                f.now,
                TransportEvent::Frame {
                    generation: f.generation,
                    frame,
                },
            );
            while f.client.poll_transmit().is_some() {}
            while let Some(ev) = f.client.poll_event() {
                outcomes += usize::from(matches!(ev, ClientEvent::Outcome { .. }));
            }
        }
        outcomes
    }
}

impl Default for SendLoop {
    fn default() -> Self {
        SendLoop::new()
    }
}
