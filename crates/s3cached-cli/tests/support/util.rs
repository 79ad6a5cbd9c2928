//! Small things every part of the harness needs: free ports, tools from the test virtualenv,
//! unique names, temporary directories, error chains, start-up timeouts, and running a future
//! from sync code.

use std::collections::BTreeSet;
use std::fs;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn handed_out_ports() -> &'static Mutex<BTreeSet<u16>> {
    static PORTS: OnceLock<Mutex<BTreeSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(BTreeSet::new()))
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out
/// before (so parallel tests in one binary never get the same port).
pub fn free_port() -> u16 {
    let mut ports = handed_out_ports().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr of a bound socket").port();
        if ports.insert(port) {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 after 1000 tries");
}

/// Two free ports `(p, p + offset)`. SeaweedFS derives some gRPC addresses as `port + 10000`
/// whatever the flags say, so such pairs must both be free.
pub fn free_port_pair(offset: u16) -> (u16, u16) {
    let mut ports = handed_out_ports().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr of a bound socket").port();
        let Some(second) = port.checked_add(offset) else {
            continue;
        };
        if ports.contains(&port) || ports.contains(&second) || !bindable(second) {
            continue;
        }
        ports.insert(port);
        ports.insert(second);
        return (port, second);
    }
    panic!("no free pair of TCP ports (p, p + {offset}) on 127.0.0.1 after 1000 tries");
}

/// A tool from the test virtualenv (`$S3CACHED_TEST_VENV/bin/NAME`), else from `PATH`.
pub fn venv_bin(name: &str) -> PathBuf {
    if let Some(venv) = std::env::var_os("S3CACHED_TEST_VENV") {
        let candidate = Path::new(&venv).join("bin").join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return candidate;
            }
        }
    }
    panic!(
        "`{name}` not found in $S3CACHED_TEST_VENV/bin ({}) nor on PATH; run the tests with \
         scripts/test.sh (it installs the test tools), or run scripts/test-env.sh once and set \
         S3CACHED_TEST_VENV=<repo>/.venv",
        std::env::var("S3CACHED_TEST_VENV").unwrap_or_else(|_| "unset".to_owned())
    );
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}-{n}-{:x}", std::process::id(), nanos & 0xff_ffff)
}

/// A valid, lowercase bucket name that no other test of any running test binary uses:
/// `<prefix>-<pid>-<counter>-<random>`, with the prefix reduced to `[a-z0-9-]`.
pub fn unique_bucket(prefix: &str) -> String {
    let mut clean: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    clean.truncate(30);
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "t" } else { clean };
    let name = format!("{clean}-{}", unique_suffix());
    debug_assert!((3..=63).contains(&name.len()), "bucket name {name:?}");
    name
}

/// A new empty directory under `parent`, removed by whoever owns it.
pub fn make_temp_dir(parent: &Path, prefix: &str) -> PathBuf {
    let dir = parent.join(format!("{prefix}-{}", unique_suffix()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// An error and its sources, `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

pub fn timeout_from_env(default: Duration) -> Duration {
    std::env::var("S3CACHED_TEST_STARTUP_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(default)
}

/// Runs a future to completion on a fresh current-thread runtime in a scoped thread. Works from
/// plain `#[test]`s and from inside `#[tokio::test]`s alike (where a nested `block_on` would
/// panic). Panics of the future propagate.
pub fn block_on_thread<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    thread::scope(|scope| {
        let handle = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime for the test harness")
                .block_on(fut)
        });
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
