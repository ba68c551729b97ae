//! `PORT=3100 lockstep-plain-socketioxide`: prints "listening on <port>"
//! and serves until killed (the baseline of `benches/load/run.sh`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on {}", listener.local_addr()?.port());
    // As Node's http server does by default (and lockstep-server).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, lockstep_plain_socketioxide::app()).await
}
