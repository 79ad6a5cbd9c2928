//! `s3cached serve --config FILE`: the example file serves in front of SeaweedFS, flags beat
//! environment variables beat the file, and a bad file stops the process with one line.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::clients::{get_bytes, put_bytes};
use support::proxy::S3Cached;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/s3cached.toml");
const CLIENT_KEY: &str = "config-client-key";
const CLIENT_SECRET: &str = "config-client-secret";
const HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;

/// A scratch directory under the cargo target dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("config-file-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `s3cached ARGS` with `envs` (and no inherited S3CACHED_* variable) in `dir`, expecting it
/// to exit on its own within 10 s; returns the exit code and stderr.
fn run_to_exit(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("S3CACHED_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn s3cached");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait().expect("wait for s3cached") {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("s3cached {args:?} did not exit within 10 s");
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status.code(), stderr)
}

#[tokio::test]
async fn serves_with_the_example_config_file() {
    let seaweed = support::seaweed::shared();
    let bucket = seaweed.new_bucket("config-example").await;
    seaweed.put_object(&bucket, "k", "from the origin").await;
    // The builder passes --listen/--admin-listen on free ports: flags beat the file's.
    let proxy = S3Cached::builder()
        .origin(&seaweed.endpoint())
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .args(["--config", EXAMPLE])
        .start();
    let client = proxy.client(CLIENT_KEY, CLIENT_SECRET);
    assert_eq!(get_bytes(&client, &bucket, "k").await, b"from the origin");
    assert_eq!(get_bytes(&client, &bucket, "k").await, b"from the origin");
    assert_eq!(proxy.metric_value(HITS).await, 1.0);
    put_bytes(&client, &bucket, "written", b"through s3cached".to_vec()).await;
    assert_eq!(get_bytes(&client, &bucket, "written").await, b"through s3cached");

    let log = proxy.log_contents();
    assert!(log.contains("settings from config file"), "{log}");
    // memory-capacity comes from the file (the built-in default is 256MiB).
    assert!(log.contains("memory_capacity=1GiB"), "{log}");
}

#[test]
fn flags_beat_environment_beats_file() {
    let scratch = Scratch::new("precedence");
    let config = scratch.file("s3cached.toml", "memory-capacity = \"64MiB\"\n");
    // max-object-size larger than memory-capacity fails at start-up with both values in the
    // message, which shows which memory-capacity won without starting a server.
    let base = ["serve", "--max-object-size", "1GiB", "--allow-anonymous"];
    let capacity = |extra: &[&str], envs: &[(&str, &str)]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (code, stderr) = run_to_exit(&scratch.0, &args, envs);
        assert_eq!(code, Some(1), "{stderr}");
        let start = stderr.find("--memory-capacity (").unwrap_or_else(|| panic!("{stderr}"));
        let rest = &stderr[start + "--memory-capacity (".len()..];
        rest[..rest.find(')').unwrap_or(rest.len())].to_owned()
    };
    assert_eq!(capacity(&[], &[]), "256MiB", "default");
    assert_eq!(capacity(&["--config", &config], &[]), "64MiB", "file");
    assert_eq!(
        capacity(&[], &[("S3CACHED_CONFIG", &config)]),
        "64MiB",
        "file from S3CACHED_CONFIG"
    );
    let env = [("S3CACHED_MEMORY_CAPACITY", "32MiB")];
    assert_eq!(capacity(&["--config", &config], &env), "32MiB", "environment over file");
    assert_eq!(
        capacity(&["--config", &config, "--memory-capacity", "16MiB"], &env),
        "16MiB",
        "flag over environment"
    );
}

#[test]
fn a_bad_config_file_stops_with_one_line() {
    let scratch = Scratch::new("bad");
    let unknown = scratch.file("unknown.toml", "ttl = \"1m\"\nmemroy-capacity = \"1GiB\"\n");
    let wrong_type = scratch.file("type.toml", "no-hot-path = \"yes\"\n");
    let missing = scratch.0.join("missing.toml").to_string_lossy().into_owned();
    for (path, expected) in [
        (&unknown, "line 2: unknown key \"memroy-capacity\""),
        (&wrong_type, "line 1: no-hot-path: expected a boolean"),
        (&missing, "cannot read config file"),
    ] {
        let (code, stderr) = run_to_exit(&scratch.0, &["serve", "--config", path], &[]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.starts_with("s3cached: ") && stderr.contains(expected),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}
