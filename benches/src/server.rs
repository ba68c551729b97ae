//! A server machine with a [`MemStore`] and a minimal driver: rooms kept by
//! [`Rooms`] as every driver keeps them, per-connection outbound queues, and
//! a broadcast that encodes its frame once and hands the same bytes to every
//! member.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use lockstep_core::Instant;
use lockstep_core::ids::{ClientMsgId, Epoch, Seq, UserId};
use lockstep_core::server::{ConnId, Rooms, Server, ServerConfig, ServerOutput};
use lockstep_core::store::{MemStore, StoreCommand, StoreError, StoreOpId, StoreReply};
use lockstep_core::wire::{Body, ClientFrame, ReqId, encode_server};

use crate::frames::{channel, typical_body, user};

/// Encoded frames waiting for one connection's transport.
type Outbound = VecDeque<Arc<[u8]>>;

/// The server, its store, and just enough driver to route outputs.
#[derive(Debug)]
pub struct Driver {
    /// The machine under measurement.
    pub server: Server,
    /// The store its commands run against.
    pub store: MemStore,
    /// Room membership, as every driver keeps it.
    pub rooms: Rooms,
    /// Each connection's outbound queue, indexed by connection id.
    pub outbound: Vec<Outbound>,
    /// The time the fixture runs at.
    pub now: Instant,
    next_req: u64,
    next_cmid: u64,
    /// While set, sends and broadcasts are dropped unencoded: set-up joins
    /// would otherwise cost O(members²) (each join ack lists every member,
    /// and each presence:join goes to every member).
    quiet: bool,
}

/// A config without the per-connection rate limits: a bench posts far
/// faster than a person, and a refusal would measure the wrong path.
#[must_use]
pub fn unthrottled() -> ServerConfig {
    ServerConfig {
        messages_per_sec: u32::MAX,
        messages_burst: u32::MAX,
        max_connections: 20_000,
        presence_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

impl Driver {
    /// A server whose [`channel`] has `members` connections (users `u1..`)
    /// joined, every store command completed at once.
    #[must_use]
    pub fn with_members(members: u64) -> Self {
        let mut d = Driver {
            server: Server::new(unthrottled()),
            store: MemStore::default(),
            rooms: Rooms::new(),
            outbound: Vec::new(),
            now: Instant::from_millis(1_000),
            next_req: 1,
            next_cmid: 1,
            quiet: true,
        };
        for i in 1..=members {
            let conn = ConnId(i);
            d.connect(conn, user(&format!("u{i}")));
            let req = d.req();
            d.frame(
                conn,
                ClientFrame::Join {
                    req,
                    channel_id: channel(),
                    epoch: None,
                    since: None,
                },
            );
        }
        d.clear_outbound();
        d.quiet = false;
        d
    }

    /// Opens `conn` as `user` and routes the welcome.
    pub fn connect(&mut self, conn: ConnId, user: UserId) {
        self.rooms.open(conn, user.clone());
        self.server.handle_connect(self.now, conn, user);
        self.run();
    }

    /// Closes `conn`.
    pub fn disconnect(&mut self, conn: ConnId) {
        self.server.handle_disconnect(self.now, conn);
        self.rooms.close(conn);
        self.run();
    }

    /// Feeds a frame and runs every store command it causes to completion.
    pub fn frame(&mut self, conn: ConnId, frame: ClientFrame) {
        self.server.handle_frame(self.now, conn, frame);
        self.run();
    }

    /// A fresh request id.
    pub fn req(&mut self) -> ReqId {
        self.next_req += 1;
        ReqId(self.next_req)
    }

    /// Drops every queued outbound frame.
    pub fn clear_outbound(&mut self) {
        for q in &mut self.outbound {
            q.clear();
        }
    }

    /// Feeds `conn`'s post of `body` and returns the store append it
    /// causes, executed but not yet handed back (the part the fan-out bench
    /// leaves out of its timing).
    pub fn prepare_append(
        &mut self,
        conn: ConnId,
        body: &Body,
    ) -> Option<(StoreOpId, Result<StoreReply, StoreError>)> {
        self.next_cmid += 1;
        let req = self.req();
        let client_msg_id = ClientMsgId::new(format!("b-{}", self.next_cmid)).ok()?;
        self.server.handle_frame(
            self.now,
            conn,
            ClientFrame::Send {
                req,
                channel_id: channel(),
                client_msg_id,
                body: body.clone(),
            },
        );
        let mut found = None;
        while let Some(out) = self.server.poll_output() {
            match out {
                ServerOutput::Store { op, cmd } => found = Some((op, self.store.execute(cmd))),
                other => self.route(other),
            }
        }
        found
    }

    /// Hands a store completion back and routes every output: the timed
    /// part of the fan-out bench.
    pub fn complete(&mut self, op: StoreOpId, result: Result<StoreReply, StoreError>) {
        self.server.handle_store(self.now, op, result);
        self.run();
    }

    /// Drains the machine, executing store commands inline, until it is
    /// quiet.
    pub fn run(&mut self) {
        while let Some(out) = self.server.poll_output() {
            match out {
                ServerOutput::Store { op, cmd } => {
                    let result = self.store.execute(cmd);
                    self.server.handle_store(self.now, op, result);
                }
                other => self.route(other),
            }
        }
    }

    /// Carries out one output the way a driver does.
    fn route(&mut self, out: ServerOutput) {
        match out {
            ServerOutput::Send { conn, frame } => {
                if self.quiet {
                    self.queue(conn);
                    return;
                }
                let bytes: Arc<[u8]> = encode_server(&frame).into();
                self.queue(conn).push_back(bytes);
            }
            ServerOutput::Broadcast {
                channel,
                frame,
                except,
            } => {
                if self.quiet {
                    return;
                }
                let bytes: Arc<[u8]> = encode_server(&frame).into();
                for conn in self.rooms.recipients(&channel, &except) {
                    let idx = usize::try_from(conn.0).unwrap_or(usize::MAX);
                    if let Some(q) = self.outbound.get_mut(idx) {
                        q.push_back(Arc::clone(&bytes));
                    }
                }
            }
            ServerOutput::RoomJoin { .. }
            | ServerOutput::RoomLeave { .. }
            | ServerOutput::Close { .. } => self.rooms.apply(&out),
            ServerOutput::Store { .. }
            | ServerOutput::Committed(_)
            | ServerOutput::Relay(_)
            | ServerOutput::Presence(_) => {}
        }
    }

    fn queue(&mut self, conn: ConnId) -> &mut Outbound {
        let idx = usize::try_from(conn.0).unwrap_or(usize::MAX).min(1 << 20);
        if self.outbound.len() <= idx {
            self.outbound.resize_with(idx + 1, VecDeque::new);
        }
        &mut self.outbound[idx]
    }
}

/// The per-member part of a broadcast on its own: hand the same encoded
/// bytes to each member's queue. Returns how many were queued.
pub fn fan_out_encoded(bytes: &Arc<[u8]>, members: &[ConnId], outbound: &mut [Outbound]) -> usize {
    let mut n = 0;
    for &conn in members {
        let idx = usize::try_from(conn.0).unwrap_or(usize::MAX);
        if let Some(q) = outbound.get_mut(idx) {
            q.push_back(Arc::clone(bytes));
            n += 1;
        }
    }
    n
}

/// A channel whose log holds `events` messages, and a server over it, for
/// the join-with-backlog bench.
#[derive(Debug)]
pub struct Backlog {
    /// The driver (no members yet).
    pub driver: Driver,
    /// The log's identity.
    pub epoch: Epoch,
    next_conn: u64,
}

impl Backlog {
    /// Appends `events` messages to [`channel`] straight into the store.
    #[must_use]
    pub fn new(events: u64) -> Self {
        let mut driver = Driver::with_members(0);
        let author = user("alice");
        let body = typical_body();
        for i in 1..=events {
            let Ok(client_msg_id) = ClientMsgId::new(format!("pre-{i}")) else {
                continue;
            };
            let _ = driver.store.execute(StoreCommand::Append {
                channel: channel(),
                entries: vec![lockstep_core::store::AppendEntry::Message {
                    author: author.clone(),
                    client_msg_id,
                    body: body.clone(),
                    ts: 1_700_000_000_000 + i,
                }],
                chain: lockstep_core::store::AppendChain::Start,
            });
        }
        let epoch = driver
            .store
            .head(&channel())
            .map_or(Epoch(1), |(epoch, _)| epoch);
        Backlog {
            driver,
            epoch,
            next_conn: 1,
        }
    }

    /// A new connection of the same user joins from seq 0 (so the reply
    /// carries the whole backlog) and then leaves; returns how many bytes
    /// were queued for it (the encoded ack included).
    pub fn join_once(&mut self) -> usize {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let d = &mut self.driver;
        d.connect(conn, user("joiner"));
        let req = d.req();
        d.frame(
            conn,
            ClientFrame::Join {
                req,
                channel_id: channel(),
                epoch: Some(self.epoch),
                since: Some(Seq::ZERO),
            },
        );
        let idx = usize::try_from(conn.0).unwrap_or(usize::MAX);
        let queued = d
            .outbound
            .get_mut(idx)
            .map_or(0, |q| q.drain(..).map(|b| b.len()).sum());
        d.disconnect(conn);
        queued
    }
}
