//! The browser side of the server: the web page it serves at `/` (the demo
//! chat under `--dev`, or any folder with `--web-root`), and which page
//! origins may call it from another origin (CORS).

use std::path::{Path, PathBuf};

use axum::http::HeaderValue;
use tower_http::cors::AllowOrigin;

/// Where `scripts/demo-build` writes the demo chat page, in this source
/// tree (`cargo run` finds it; an installed binary passes `--web-root`).
#[must_use]
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("react")
        .join("demo")
        .join("dist")
}

/// What the server serves at `/`, said once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Nothing (not `--dev`, no `--web-root`).
    None,
    /// The files of a folder: the built demo under `--dev`, or `--web-root`.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// Whether it is the demo chat page found under `--dev`.
        demo: bool,
    },
    /// `--dev` without `--web-root`, and the demo is not built.
    DemoMissing,
    /// `--web-root` names a folder without an `index.html`.
    NoIndex(PathBuf),
}

impl Page {
    /// The page for these settings: `--web-root` when given; else, under
    /// `--dev`, the demo when built.
    #[must_use]
    pub fn choose(web_root: Option<&Path>, dev: bool) -> Page {
        match web_root {
            Some(dir) if dir.join("index.html").is_file() => Page::Folder {
                dir: dir.to_path_buf(),
                demo: false,
            },
            Some(dir) => Page::NoIndex(dir.to_path_buf()),
            None if !dev => Page::None,
            None => {
                let dir = demo_dir();
                if dir.join("index.html").is_file() {
                    Page::Folder { dir, demo: true }
                } else {
                    Page::DemoMissing
                }
            }
        }
    }

    /// The folder to serve, if any.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Page::Folder { dir, .. } => Some(dir),
            _ => None,
        }
    }

    /// The line printed at startup (after `listening on`), if any: where to
    /// open the page, or how to get it.
    #[must_use]
    pub fn announce(&self, addr: std::net::SocketAddr) -> Option<String> {
        match self {
            Page::None => None,
            Page::Folder { demo: true, .. } => Some(format!(
                "demo chat on http://{addr}/ (open it in two tabs, sign in as two users)"
            )),
            Page::Folder { dir, demo: false } => Some(format!(
                "web page on http://{addr}/ (serving {})",
                dir.display()
            )),
            Page::DemoMissing => Some(
                "no demo page yet: run ./scripts/demo-build, then start the server again \
                 (or pass --web-root DIR)"
                    .to_owned(),
            ),
            Page::NoIndex(dir) => Some(format!(
                "--web-root {}: no index.html there; serving nothing at /",
                dir.display()
            )),
        }
    }
}

/// The origins allowed to call the server from a page of another origin:
/// `--cors-origins` when given (`*` for any); else, under `--dev`, every
/// loopback origin (a page from a dev server on another port works out of
/// the box); else none. `None` when an origin is not a valid header value.
#[must_use]
pub fn allowed_origins(origins: &[String], dev: bool) -> Option<AllowOrigin> {
    if origins.iter().any(|o| o == "*") {
        return Some(AllowOrigin::any());
    }
    if origins.is_empty() && dev {
        return Some(AllowOrigin::predicate(|origin, _| {
            is_loopback_origin(origin)
        }));
    }
    let list = origins
        .iter()
        .map(|o| o.parse::<HeaderValue>().ok())
        .collect::<Option<Vec<_>>>()?;
    Some(AllowOrigin::list(list))
}

/// Whether `origin` is `http(s)://` on this machine: `localhost`,
/// `127.0.0.0/8` or `[::1]`, any port.
#[must_use]
pub fn is_loopback_origin(origin: &HeaderValue) -> bool {
    let Ok(text) = origin.to_str() else {
        return false;
    };
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    // An origin is scheme://host[:port], nothing after.
    if rest.contains(['/', '?', '#', '@']) {
        return false;
    }
    let host = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, port)) if port.is_empty() || is_port(port) => host,
            _ => return false,
        },
        None => match rest.split_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return false,
            None => rest,
        },
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .unwrap_or(text)
        .parse::<u16>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_only() {
        for yes in [
            "http://localhost:5173",
            "http://LOCALHOST",
            "http://127.0.0.1:3000",
            "https://127.0.0.2:8443",
            "http://[::1]:5173",
            "http://[::1]",
        ] {
            assert!(is_loopback_origin(&HeaderValue::from_static(yes)), "{yes}");
        }
        for no in [
            "http://example.com",
            "http://localhost.example.com:3000",
            "http://10.0.0.1:3000",
            "http://127.0.0.1.evil.com",
            "http://127.0.0.1:3000/path",
            "http://user@127.0.0.1",
            "ftp://127.0.0.1",
            "null",
            "http://[::2]:80",
            "http://localhost:99999",
            "http://[::1]x",
        ] {
            assert!(!is_loopback_origin(&HeaderValue::from_static(no)), "{no}");
        }
    }

    #[test]
    fn a_web_root_without_index_is_said_and_not_served() {
        let dir = std::env::temp_dir().join(format!("lockstep-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let page = Page::choose(Some(&dir), false);
        assert_eq!(page, Page::NoIndex(dir.clone()));
        assert_eq!(page.dir(), None);
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        let page = Page::choose(Some(&dir), true);
        assert_eq!(page.dir(), Some(dir.as_path()));
        assert!(
            page.announce("127.0.0.1:3000".parse().unwrap())
                .unwrap()
                .starts_with("web page on http://127.0.0.1:3000/")
        );
        assert_eq!(Page::choose(None, false), Page::None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
