//! The binary's command line: bad flags get a clear message and a failing
//! exit status; `token` mints a JWT the server accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use lockstep_server::jwt::{JwtAuthenticator, JwtChecks, Secret};
use lockstep_tokio::server::Authenticator;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep-server"))
        .args(args)
        .env_remove("LOCKSTEP_JWT_SECRET")
        .env_remove("LOCKSTEP_JWT_SECRET_FILE")
        .env_remove("LOCKSTEP_DEV")
        .env_remove("LOCKSTEP_POSTGRES_URL")
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
        (&["--jwt-secret", "short"][..], "at least 32 bytes"),
        (
            &["--jwt-secret", "0123456789abcdef"][..],
            "at least 32 bytes (it has 16)",
        ),
        (
            &["--jwt-secret-file", "/nonexistent/lockstep-secret"][..],
            "cannot read the JWT secret file",
        ),
        (
            &["--dev", "--addr", "0.0.0.0:0"][..],
            "non-loopback address",
        ),
        (&["--dev", "--addr", "[::]:0"][..], "non-loopback address"),
        (&["--dev-allow-remote"][..], "--dev"),
        (
            &["--dev", "--memory", "--cors-origins", "bad\norigin"][..],
            "invalid CORS origin",
        ),
        (
            &[
                "--dev",
                "--memory",
                "--postgres",
                "postgres://u@127.0.0.1:1/db",
            ][..],
            "cannot be used with",
        ),
        (
            &["--dev", "--postgres", "postgres://u@127.0.0.1:1/db"][..],
            "cannot start the postgres store",
        ),
        (
            &[
                "--dev",
                "--postgres",
                "postgres://u@127.0.0.1:1/db",
                "--postgres-schema",
                "Chat",
            ][..],
            "invalid schema name \"Chat\"",
        ),
        (
            &["--dev", "--postgres-writers", "0"][..],
            "--postgres-writers",
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
    let secret = "cli-secret-0123456789-0123456789-";
    let out = run(&["token", "alice", "--jwt-secret", secret, "--ttl-secs", "60"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    let key = Secret::load(Some(secret), None).unwrap();
    let identity = JwtAuthenticator::new(&key, &JwtChecks::default())
        .authenticate(token.trim())
        .unwrap();
    assert_eq!(identity.user.as_str(), "alice");
    assert!(identity.expires_at.is_some());
    let out = run(&["token", "not a user!", "--jwt-secret", secret]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid user id"), "{}", stderr(&out));
    let out = run(&["token", "alice", "--jwt-secret", "too-short"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 32 bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn token_reads_the_secret_file_and_sets_nbf_iss_and_aud() {
    let dir = std::env::temp_dir().join(format!("lockstep-cli-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    let secret = "file-secret-0123456789-0123456789";
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let file_arg = file.to_str().unwrap();
    let mint = |extra: &[&str]| {
        let mut args = vec!["token", "alice", "--jwt-secret-file", file_arg];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let key = Secret::load(None, Some(&file)).unwrap();
    let checks = JwtChecks {
        issuer: Some("https://id.example".into()),
        audience: Some("chat".into()),
        leeway_secs: 0,
    };
    let auth = JwtAuthenticator::new(&key, &checks);
    let scoped = mint(&["--issuer", "https://id.example", "--audience", "chat"]);
    assert_eq!(auth.authenticate(&scoped).unwrap().user.as_str(), "alice");
    // Not valid yet: refused until its nbf.
    let later = mint(&[
        "--issuer",
        "https://id.example",
        "--audience",
        "chat",
        "--not-before-secs",
        "600",
    ]);
    assert!(auth.authenticate(&later).is_err());
    // No audience: refused by a server that requires one.
    let unscoped = mint(&["--issuer", "https://id.example"]);
    assert!(auth.authenticate(&unscoped).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
