//! The turmoil hosts: the server (the real server driver over the framed
//! front, on a store that outlives the host) and the client apps (the real
//! client driver, fed commands by the test thread, feeding every event to
//! the lab).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use lockstep_core::Instant;
use lockstep_core::client::{Backoff, Client, Heartbeat};
use lockstep_core::server::{Open, Server};
use lockstep_tokio::client::{ClientDriverConfig, Events, spawn_client_with};
use lockstep_tokio::framed::framed_connection;
use lockstep_tokio::server::{
    DevAuthenticator, FramedFrontConfig, ServerDriverConfig, SharedMemStore, TokioClock,
    spawn_server_with,
};
use lockstep_tokio::transport::{Connector, TransportError};
use tokio::sync::mpsc;

use super::lab::{AppCmd, Lab, user};
use super::tap::Tap;

/// The server's host name.
pub(crate) const SERVER: &str = "server";

/// The framed front's port.
const PORT: u16 = 9000;

/// The server clock's Unix time at the start of the simulation (fixed, so
/// message timestamps do not depend on the wall clock).
const EPOCH_MS: u64 = 1_700_000_000_000;

/// The server closes a connection silent this long: a half-open stream
/// (a partitioned client) must not hold its presence forever.
const SERVER_IDLE: Duration = Duration::from_secs(4);

/// Client heartbeat: a ping every second, the connection is given up after
/// two silent seconds (a partition or a hold is noticed within three).
const HEARTBEAT: Heartbeat = Heartbeat {
    interval: Duration::from_secs(1),
    timeout: Duration::from_secs(2),
};

/// Virtual time since the simulation started, as a lab instant.
pub(crate) fn sim_now() -> Instant {
    let ms = ::turmoil::sim_elapsed().map_or(0, |d| d.as_millis());
    Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// The server host: started at the beginning and again after every
/// bounce, on the same store.
pub(crate) fn server(
    store: SharedMemStore,
    tweak: fn(&mut ServerDriverConfig),
    prepare: fn(&mut Server),
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ::turmoil::Result>>> {
    move || {
        let store = store.clone();
        Box::pin(async move {
            let listener = ::turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            let incoming = Box::pin(futures_util::stream::unfold(listener, |l| async move {
                Some((l.accept().await.map(|(stream, _)| stream), l))
            }));
            let mut config = ServerDriverConfig::default();
            config.machine.idle_timeout = Some(SERVER_IDLE);
            tweak(&mut config);
            // A restarted server's clock goes on from the simulation's
            // time, so timestamps never go back.
            let origin = EPOCH_MS.saturating_add(sim_now().as_millis());
            let clock = TokioClock::starting_at(origin);
            let server = spawn_server_with(config, Open, store, clock, prepare);
            server.serve(
                incoming,
                Arc::new(DevAuthenticator::new()),
                FramedFrontConfig::default(),
            );
            std::future::pending::<()>().await;
            Ok(())
        })
    }
}

/// Opens framed connections to the server over turmoil's TCP, each one
/// tapped for invariant 7.
fn connector(tap: Tap) -> impl Connector {
    move || {
        let tap = tap.clone();
        async move {
            let stream = ::turmoil::net::TcpStream::connect((SERVER, PORT)).await?;
            Ok::<_, TransportError>(tap.wrap(framed_connection(stream)))
        }
    }
}

fn fast(base_ms: u64) -> Backoff {
    Backoff {
        base: Duration::from_millis(base_ms),
        cap: Duration::from_millis(base_ms * 8),
        factor: 2.0,
        jitter: 0.2,
    }
}

/// A client config with timers short enough that a case heals within
/// seconds of virtual time.
fn client_config(i: u8, seed: u64) -> ClientDriverConfig {
    let token = format!("dev:{}", user(i));
    let mut config = ClientDriverConfig::new(token, seed.wrapping_add(u64::from(i)));
    let c = &mut config.client;
    c.connect_timeout = Duration::from_secs(2);
    c.reconnect_backoff = fast(200);
    c.suspend_after = Duration::from_secs(60);
    c.suspended_retry = Duration::from_secs(2);
    c.join_timeout = Duration::from_secs(2);
    c.join_backoff = fast(100);
    c.request_timeout = Duration::from_secs(2);
    c.send_backoff = fast(100);
    c.heartbeat = Some(HEARTBEAT);
    // Invariant 8 is judged on the machine's readings at each state event.
    config.record_internals = true;
    config
}

/// Reads every event already queued, without waiting.
fn drain_ready(lab: &RefCell<Lab>, i: usize, events: &mut Events) -> usize {
    let mut read = 0;
    while let Some(Some(event)) = events.next().now_or_never() {
        lab.borrow_mut().on_event(sim_now(), i, event);
        read += 1;
    }
    read
}

/// Client app `i`: starts its driver, connects, then reads events (first)
/// and carries out commands until the mailbox closes.
pub(crate) async fn client(
    i: u8,
    seed: u64,
    tweak: fn(u8, &mut ClientDriverConfig),
    prepare: fn(u8, &mut Client),
    lab: Rc<RefCell<Lab>>,
    mut mailbox: mpsc::UnboundedReceiver<AppCmd>,
) -> ::turmoil::Result {
    let ix = usize::from(i);
    let mut config = client_config(i, seed);
    tweak(i, &mut config);
    let tap = lab.borrow().apps[ix].tap.clone();
    let (handle, mut events) = spawn_client_with(config, connector(tap), |c| prepare(i, c));
    lab.borrow_mut().apps[ix].handle = Some(handle.clone());
    handle.connect();
    loop {
        tokio::select! {
            biased;
            event = events.next() => {
                let Some(event) = event else { break };
                lab.borrow_mut().on_event(sim_now(), ix, event);
            }
            cmd = mailbox.recv() => {
                let Some(cmd) = cmd else { break };
                // The oracle reads the machine live while judging events;
                // that is only exact if no event is still on its way when
                // the app changes what it wants. Let the driver run, and
                // read what it forwards, until nothing more comes.
                loop {
                    tokio::task::yield_now().await;
                    if drain_ready(&lab, ix, &mut events) == 0 {
                        break;
                    }
                }
                lab.borrow_mut().apply(sim_now(), ix, cmd);
            }
        }
    }
    handle.close().await;
    drain_ready(&lab, ix, &mut events);
    Ok(())
}
