//! The binary's command line: bad flags get a clear message and a failing
//! exit status; `token` mints a JWT the server accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use lockstep_server::jwt::JwtAuthenticator;
use lockstep_tokio::server::Authenticator;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep-server"))
        .args(args)
        .env_remove("LOCKSTEP_JWT_SECRET")
        .env_remove("LOCKSTEP_DEV")
        .env(
            "LOCKSTEP_DB",
            std::env::temp_dir().join("lockstep-cli-unused.db"),
        )
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    for (args, expected) in [
        (&["--bogus"][..], "unexpected argument '--bogus'"),
        (
            &["--addr", "nowhere"][..],
            "invalid value 'nowhere' for '--addr",
        ),
        (&["--presence-grace-ms", "9000"][..], "--presence-grace-ms"),
        (
            &["--transports", "carrier-pigeon"][..],
            "invalid value 'carrier-pigeon'",
        ),
        (
            &["--dev", "--jwt-secret", "0123456789abcdef"][..],
            "cannot be used with",
        ),
        (&[][..], "no authentication configured"),
        (&["--jwt-secret", "short"][..], "at least 16 bytes"),
        (
            &["--dev", "--memory", "--cors-origins", "bad\norigin"][..],
            "invalid CORS origin",
        ),
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn token_mints_a_jwt_the_server_accepts() {
    let secret = "cli-secret-0123456789";
    let out = run(&["token", "alice", "--jwt-secret", secret, "--ttl-secs", "60"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    let user = JwtAuthenticator::new(secret.as_bytes())
        .authenticate(token.trim())
        .unwrap();
    assert_eq!(user.as_str(), "alice");
    let out = run(&["token", "not a user!", "--jwt-secret", secret]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid user id"), "{}", stderr(&out));
}
