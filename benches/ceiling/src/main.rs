//! `PORT=3100 lockstep-ceiling`: prints "listening on <port>" and serves
//! the raw fan-out protocol until killed (the ceiling of
//! `benches/load/run.sh`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on {}", listener.local_addr()?.port());
    lockstep_ceiling::serve(listener).await
}
