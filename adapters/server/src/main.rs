//! `lockstep-server`: the lockstep chat server binary.
//!
//! Serves the Socket.IO event contract (docs/PROTOCOL.md) on
//! `127.0.0.1:3000` with the SQLite file `./lockstep.db`; every setting has
//! a flag and an environment variable (`lockstep-server --help`). Auth is
//! JWT HS256 with a secret from `--jwt-secret-file` (or `--jwt-secret`;
//! `lockstep-server token <user>` mints one), or the insecure `--dev`
//! mode that accepts `dev:<userId>` tokens (loopback only unless
//! `--dev-allow-remote`). SIGINT/SIGTERM shut it down gracefully.
//! `GET /health/live` and `GET /health/ready` are the probes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use lockstep_server::cli::{self, Cli, Command, LogFormat};
use lockstep_server::{jwt, serve};

/// mimalloc instead of the system allocator: every delivery allocates its
/// packet and frees it on another thread, and glibc's allocator serializes
/// that traffic on its arena locks (profiled: a fifth of the server's CPU
/// under load went to malloc, free and their lock waits).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => match token(&args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        None => run(cli.serve),
    }
}

fn run(args: cli::ServeArgs) -> ExitCode {
    init_logs(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(on_signal(stop.clone()));
        match serve::serve(args, stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!(%e, "cannot serve");
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Cancels `stop` on SIGINT or SIGTERM.
async fn on_signal(stop: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => info!("SIGINT received"),
                    _ = term.recv() => info!("SIGTERM received"),
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
                info!("SIGINT received");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        info!("SIGINT received");
    }
    stop.cancel();
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Why `token` could not mint.
#[derive(Debug, thiserror::Error)]
enum TokenError {
    /// The secret is unusable.
    #[error(transparent)]
    Secret(#[from] jwt::SecretError),
    /// Minting failed.
    #[error(transparent)]
    Mint(#[from] jwt::MintError),
}

fn token(args: &cli::TokenArgs) -> Result<String, TokenError> {
    let secret = jwt::Secret::load(args.jwt_secret.as_deref(), args.jwt_secret_file.as_deref())?;
    let now = jwt::unix_now();
    let claims = jwt::MintClaims {
        exp: now.saturating_add(args.ttl_secs),
        nbf: args.not_before_secs.map(|delay| now.saturating_add(delay)),
        iss: args.issuer.clone(),
        aud: args.audience.clone(),
    };
    Ok(jwt::mint(&secret, &args.user, &claims)?)
}
