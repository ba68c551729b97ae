//! # lockstep-load
//!
//! An end-to-end load generator for Socket.IO chat servers speaking the
//! lockstep contract (docs/PROTOCOL.md §1): N subscribers and M publishers
//! join one channel over WebSocket on loopback; each publisher keeps
//! `window` `message:send` requests in flight for `duration` seconds with
//! bodies stamped with their send time; subscribers time each
//! `message:new`. It prints the acked publish rate, the delivered rate and
//! the publish-to-delivery latency percentiles, plus the CPU time the
//! server process used when given its pid. Every run is bounded in time
//! (duration + drain, both capped) and only loopback is allowed.
//!
//! ```sh
//! lockstep-load --url http://127.0.0.1:3000 --subscribers 10 --publishers 2 --server-pid $PID
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod histogram;
mod run;
mod sio;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use crate::histogram::Histogram;
use crate::run::{Plan, Progress, body_pad, publish, subscribe};
use crate::sio::{Protocol, Socket};

/// Longest run the generator accepts, seconds.
const DURATION_MAX: u64 = 120;
/// Longest wait for the last deliveries after sending stops, seconds.
const DRAIN_MAX: u64 = 60;
/// Most connections of either kind.
const CONNECTIONS_MAX: usize = 1_000;

/// Drives a Socket.IO chat server with pipelined publishers and counts
/// what its subscribers receive.
#[derive(Debug, Parser)]
#[command(name = "lockstep-load", version)]
struct Args {
    /// Server URL; only loopback hosts are accepted. Several, comma
    /// separated, are the processes of one multi-node deployment: the
    /// publishers connect to the first, subscribers take turns over all,
    /// and each URL's delivery latency is reported (the extra latency of
    /// members on another process than the sender's).
    #[arg(long, default_value = "http://127.0.0.1:3000", value_delimiter = ',')]
    url: Vec<String>,
    /// Subscribing connections (each its own user).
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Publishing connections (each its own user).
    #[arg(long, default_value_t = 2)]
    publishers: usize,
    /// `message:send` requests in flight per publisher.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Bytes of each body in compact JSON (at least 27).
    #[arg(long, default_value_t = 200)]
    body_bytes: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds to wait, after sending stops, for the last acks and deliveries.
    #[arg(long, default_value_t = 10)]
    drain: u64,
    /// The channel everyone joins.
    #[arg(long, default_value = "load")]
    channel: String,
    /// Pid of the server, to report the CPU time it spent during the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// What the server speaks: the lockstep contract over Socket.IO, or the
    /// raw frames of the ceiling server (`lockstep-ceiling`).
    #[arg(long, value_enum, default_value_t = Protocol::Socketio)]
    protocol: Protocol,
    /// A name for the run, printed with the results.
    #[arg(long, default_value = "run")]
    label: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lockstep-load: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockstep-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The WebSocket URL of the endpoint `protocol` is served on, if `url` is
/// on loopback.
fn ws_url(url: &str, protocol: Protocol) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| format!("{url}: expected http:// or ws://"))?;
    let host = rest.trim_end_matches('/');
    let loopback = ["127.0.0.1:", "localhost:", "[::1]:"]
        .iter()
        .any(|h| host.starts_with(h));
    if !loopback {
        return Err(format!("{url}: only loopback servers may be loaded"));
    }
    Ok(protocol.ws_url(host))
}

async fn run(args: Args) -> Result<(), String> {
    let ws = args
        .url
        .iter()
        .map(|u| ws_url(u, args.protocol))
        .collect::<Result<Vec<_>, _>>()?;
    if ws.is_empty() {
        return Err("need a server URL".into());
    }
    if args.subscribers > CONNECTIONS_MAX || args.publishers > CONNECTIONS_MAX {
        return Err(format!(
            "at most {CONNECTIONS_MAX} connections of each kind"
        ));
    }
    if args.publishers == 0 || args.window == 0 || args.body_bytes < 27 {
        return Err("need a publisher, a window and bodies of 27 bytes or more".into());
    }
    let duration = Duration::from_secs(args.duration.clamp(1, DURATION_MAX));
    let drain = Duration::from_secs(args.drain.clamp(1, DRAIN_MAX));

    // Everyone is connected and joined before the clock starts.
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let (url, user) = (&ws[i % ws.len()], format!("sub{i}"));
        subscribers.push(connect(url, args.protocol, &user, &args.channel).await?);
    }
    let mut publishers = Vec::with_capacity(args.publishers);
    for i in 0..args.publishers {
        let user = format!("pub{i}");
        publishers.push(connect(&ws[0], args.protocol, &user, &args.channel).await?);
    }

    let cpu_before = args.server_pid.and_then(cpu_ticks);
    let self_before = cpu_ticks_self();
    let origin = Instant::now();
    let plan = Arc::new(Plan {
        channel: args.channel.clone(),
        protocol: args.protocol,
        window: args.window,
        pad: body_pad(args.body_bytes),
        origin,
        send_until: origin + duration,
        hard_stop: origin + duration + drain,
    });
    let progress = Arc::new(Progress::default());
    progress
        .publishers_left
        .store(args.publishers as u64, Ordering::SeqCst);
    let subs: Vec<_> = subscribers
        .into_iter()
        .map(|s| tokio::spawn(subscribe(s, plan.clone(), progress.clone())))
        .collect();
    let pubs: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(publish(s, i, plan.clone(), progress.clone())))
        .collect();

    let mut acked = 0;
    let mut refused = 0;
    let mut unanswered = 0;
    let mut last_ack = Duration::ZERO;
    let mut errors = Vec::new();
    for task in pubs {
        let r = task.await.map_err(|e| e.to_string())?;
        acked += r.acked;
        refused += r.refused;
        unanswered += r.unanswered;
        last_ack = last_ack.max(r.last_ack);
        errors.extend(r.error.map(|e| format!("publisher: {e}")));
    }
    let mut delivered = 0;
    let mut out_of_order = 0;
    let mut last_delivery = Duration::ZERO;
    let mut latency = Histogram::new();
    let mut per_url: Vec<Histogram> = ws.iter().map(|_| Histogram::new()).collect();
    for (i, task) in subs.into_iter().enumerate() {
        let r = task.await.map_err(|e| e.to_string())?;
        delivered += r.delivered;
        out_of_order += r.out_of_order;
        last_delivery = last_delivery.max(r.last_delivery);
        latency.merge(&r.latency);
        per_url[i % ws.len()].merge(&r.latency);
        errors.extend(r.error.map(|e| format!("subscriber: {e}")));
    }
    let server_cpu = match (cpu_before, args.server_pid.and_then(cpu_ticks)) {
        (Some(a), Some(b)) => Some(ticks_to_secs(b.saturating_sub(a))),
        _ => None,
    };
    let self_cpu = match (self_before, cpu_ticks_self()) {
        (Some(a), Some(b)) => Some(ticks_to_secs(b.saturating_sub(a))),
        _ => None,
    };

    let rate = |n: u64, t: Duration| {
        if t.is_zero() {
            0.0
        } else {
            n as f64 / t.as_secs_f64()
        }
    };
    let expected = acked * args.subscribers as u64;
    let ms = |us: u64| us as f64 / 1_000.0;
    println!(
        "{label}: {subs} subscribers / {pubs} publishers, window {w}, {b}-byte bodies, {d} s",
        label = args.label,
        subs = args.subscribers,
        pubs = args.publishers,
        w = args.window,
        b = args.body_bytes,
        d = duration.as_secs(),
    );
    println!(
        "  acked     {acked} ({:.0}/s), refused {refused}, unanswered {unanswered}",
        rate(acked, last_ack)
    );
    println!(
        "  delivered {delivered} of {expected} ({:.0}/s), out of order {out_of_order}",
        rate(delivered, last_delivery)
    );
    println!(
        "  latency   p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        ms(latency.quantile(0.50)),
        ms(latency.quantile(0.95)),
        ms(latency.quantile(0.99)),
        ms(latency.max()),
        latency.len(),
    );
    if ws.len() > 1 {
        for (url, h) in args.url.iter().zip(&per_url) {
            println!(
                "  on {url}: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
                ms(h.quantile(0.50)),
                ms(h.quantile(0.99)),
                h.len(),
            );
        }
    }
    let per_delivery = |cpu: Option<f64>| match cpu {
        Some(s) if delivered > 0 => {
            format!("{s:.2} s ({:.1} µs/delivery)", s * 1e6 / delivered as f64)
        }
        Some(s) => format!("{s:.2} s"),
        None => "n/a".into(),
    };
    println!(
        "  cpu       server {}, generator {}",
        per_delivery(server_cpu),
        per_delivery(self_cpu)
    );
    for e in &errors {
        println!("  error     {e}");
    }
    println!(
        "| {} | {}/{} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        args.label,
        args.subscribers,
        args.publishers,
        rate(acked, last_ack),
        rate(delivered, last_delivery),
        ms(latency.quantile(0.50)),
        ms(latency.quantile(0.95)),
        ms(latency.quantile(0.99)),
        ms(latency.max()),
        server_cpu.map_or("n/a".into(), |s| format!(
            "{:.1}",
            if delivered > 0 {
                s * 1e6 / delivered as f64
            } else {
                0.0
            }
        )),
    );
    Ok(())
}

async fn connect(
    ws: &str,
    protocol: Protocol,
    user: &str,
    channel: &str,
) -> Result<Socket, String> {
    Socket::connect(ws, protocol, user, channel)
        .await
        .map_err(|e| format!("{user}: {e}"))
}

/// User + system CPU ticks of process `pid` (Linux `/proc`), if readable.
fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn cpu_ticks_self() -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields 14 and 15 (utime, stime) of a `/proc/<pid>/stat` line; the
/// command name in field 2 may hold spaces, so count from its `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Linux reports CPU times in USER_HZ, 100 per second on every common
/// configuration.
fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_loaded() {
        assert_eq!(
            ws_url("http://127.0.0.1:3000/", Protocol::Socketio).unwrap(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:3000/", Protocol::Raw).unwrap(),
            "ws://127.0.0.1:3000/"
        );
        assert!(ws_url("http://example.com:3000", Protocol::Socketio).is_err());
        assert!(ws_url("https://127.0.0.1:3000", Protocol::Socketio).is_err());
    }

    #[test]
    fn stat_lines_give_user_plus_system_ticks() {
        let line = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0";
        assert_eq!(parse_stat_ticks(line), Some(175));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }
}
