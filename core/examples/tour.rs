//! A first tour of the lockstep client: connect, join, send, lose the
//! connection, recover. Everything runs on a virtual clock against a tiny
//! in-memory server, so the output is the same on every run.
//!
//! Run it with `cargo run -p lockstep-core --example tour`.

use std::collections::VecDeque;
use std::time::Duration;

use lockstep_core::Instant;
use lockstep_core::client::{
    Client, ClientConfig, ClientEvent, FakeServer, Transmit, TransportEvent,
};
use lockstep_core::ids::{ChannelId, UserId};
use lockstep_core::wire::{Body, LogEvent, ServerFrame};

/// The driver: owns the clock, the "network" and the server, and runs the
/// loop every real driver runs: input, drain transmits, drain events,
/// re-arm the timer.
struct World {
    now: Instant,
    client: Client,
    server: FakeServer,
    network_up: bool,
    generation: u64,
    inbound: VecDeque<TransportEvent>,
}

impl World {
    fn say(&self, text: &str) {
        println!("{:>8}  {text}", self.now.to_string());
    }

    /// Drains the client after an input, delivering whatever the server answers.
    fn drain(&mut self) {
        loop {
            while let Some(t) = self.client.poll_transmit() {
                match t {
                    Transmit::Open { generation } => {
                        self.generation = generation;
                        self.say(&format!("-> open transport #{generation}"));
                        self.inbound.push_back(if self.network_up {
                            self.server.new_connection();
                            TransportEvent::Opened { generation }
                        } else {
                            TransportEvent::Closed {
                                generation,
                                reason: "network unreachable".into(),
                            }
                        });
                    }
                    Transmit::Frame { generation, frame } => {
                        self.say(&format!("-> {frame:?}"));
                        if self.network_up && generation == self.generation {
                            for reply in self.server.handle(frame) {
                                self.inbound.push_back(TransportEvent::Frame {
                                    generation,
                                    frame: reply,
                                });
                            }
                        }
                    }
                    Transmit::Close { generation, reason } => {
                        self.say(&format!("-> close transport #{generation} ({reason})"));
                    }
                }
            }
            while let Some(event) = self.client.poll_event() {
                self.say(&format!("   app sees {}", describe(&event)));
            }
            match self.inbound.pop_front() {
                Some(input) => self.client.handle_transport(self.now, input),
                None => return,
            }
        }
    }

    /// Lets virtual time pass, firing the client's timer when it is due.
    fn wait(&mut self, ms: u64) {
        let until = self.now.saturating_add(Duration::from_millis(ms));
        while let Some(at) = self.client.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.client.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    /// A message from another user reaches the client if it is online.
    fn bob_says(&mut self, channel: &ChannelId, text: &str) {
        let bob = UserId::new("bob").unwrap_or_else(|e| panic!("{e}"));
        if let Some(frame) = self.server.post(channel, &bob, Body::text(text)) {
            if self.network_up {
                self.deliver(frame);
            }
        }
    }

    fn deliver(&mut self, frame: ServerFrame) {
        let generation = self.generation;
        self.inbound
            .push_back(TransportEvent::Frame { generation, frame });
        self.drain();
    }
}

fn main() {
    let alice = UserId::new("alice").unwrap_or_else(|e| panic!("{e}"));
    let general = ChannelId::new("general").unwrap_or_else(|e| panic!("{e}"));
    let mut w = World {
        now: Instant::ZERO,
        client: Client::new(ClientConfig::default(), "dev:alice".into(), 42),
        server: FakeServer::new(alice),
        network_up: true,
        generation: 0,
        inbound: VecDeque::new(),
    };

    println!("== 1. connect and join #general");
    w.client.connect(w.now);
    let _ = w.client.subscribe(w.now, general.clone());
    w.drain();

    println!("\n== 2. bob talks, alice answers (one outcome, one log event)");
    w.wait(1_000);
    w.bob_says(&general, "hi alice");
    let _ = w.client.send(w.now, general.clone(), Body::text("hi bob"));
    w.drain();

    println!("\n== 3. the network drops; bob keeps talking; alice writes offline");
    w.wait(1_000);
    w.network_up = false;
    w.server.new_connection();
    let generation = w.generation;
    w.inbound.push_back(TransportEvent::Closed {
        generation,
        reason: "wifi lost".into(),
    });
    w.drain();
    w.bob_says(&general, "are you there?");
    let _ = w
        .client
        .send(w.now, general.clone(), Body::text("(typed on the train)"));
    w.drain();
    w.wait(3_000);

    println!("\n== 4. the network returns: re-join from the last seq, flush the outbox");
    w.network_up = true;
    w.wait(10_000);

    let view = w.client.channel(&general);
    println!("\n== done: {:?}", w.client.state());
    println!("   #general: {view:?}");
    println!("   outbox: {} entries left", w.client.outbox().count());
}

/// One short line per event; the full `Debug` form is there for the rest.
fn describe(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Log {
            channel,
            event: LogEvent::Message(m),
        } => {
            format!(
                "#{channel} {} {}: {}",
                m.seq,
                m.author_id,
                m.body.as_ref().map_or("(deleted)", |b| b.json())
            )
        }
        ClientEvent::Outcome { id, outcome, .. } => format!("outcome of {id:?}: {outcome:?}"),
        other => format!("{other:?}"),
    }
}
