//! What the process-level tests share: starting `lockstep-server`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Starts `lockstep-server --dev` on an ephemeral loopback port with the
/// extra `args` (store, limits); returns it (killed when dropped) and its
/// URL, once it printed `listening on`.
pub async fn start_server<I, S>(args: I) -> (Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep-server"))
        .args(["--dev", "--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn lockstep-server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .expect("server start timed out")
        .unwrap()
        .expect("server exited before listening");
    let addr = line.strip_prefix("listening on ").expect("listening line");
    (child, format!("http://{addr}"))
}
