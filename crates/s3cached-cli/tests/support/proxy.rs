//! The binary under test: `s3cached serve` on free loopback ports, started and waited for
//! (`/health`), its log, its `/metrics`, and stopping it (SIGTERM, then SIGKILL). Children get
//! `PR_SET_PDEATHSIG` (see [`super::process`]), so none outlives the test process.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::REGION;
use super::clients::{http_get, s3_client_with_attempts};
use super::metrics::metric_sum;
use super::process::{
    log_file, log_tail, read_log, signal, spawn_tied_to_process, wait_for_http_200, wait_with_timeout,
};
use super::seaweed::{SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY};
use super::util::{free_port, make_temp_dir, timeout_from_env};

/// How long `S3Cached::start` waits for `/health`; overridable the same way.
const S3CACHED_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// `serve` flags that front the S3 endpoint `origin_endpoint` (path-style, signed with the
/// test SeaweedFS identity).
pub fn seaweed_origin_args(origin_endpoint: &str) -> Vec<String> {
    [
        "--origin-endpoint",
        origin_endpoint,
        "--origin-path-style",
        "--origin-region",
        REGION,
        "--origin-access-key",
        SEAWEED_ACCESS_KEY,
        "--origin-secret-key",
        SEAWEED_SECRET_KEY,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Options for starting the `s3cached` binary; see [`S3Cached::start`] for the short form.
#[derive(Debug, Default, Clone)]
pub struct S3CachedBuilder {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    ports: Option<(u16, u16)>,
    startup_timeout: Option<Duration>,
}

impl S3CachedBuilder {
    /// One more argument after `serve --listen … --admin-listen …`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More arguments after `serve --listen … --admin-listen …`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Fronts the S3 endpoint `origin_endpoint` (path-style, signed with the test SeaweedFS
    /// identity).
    pub fn origin(self, origin_endpoint: &str) -> Self {
        self.args(seaweed_origin_args(origin_endpoint))
    }

    /// The credentials clients sign with.
    pub fn client_credentials(self, access_key: &str, secret_key: &str) -> Self {
        self.args(["--access-key", access_key, "--secret-key", secret_key])
    }

    /// One more environment variable for the process (on top of the test process's own).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Listen on these ports (S3, admin) instead of fresh free ones, e.g. to restart in place.
    pub fn ports(mut self, port: u16, admin_port: u16) -> Self {
        self.ports = Some((port, admin_port));
        self
    }

    /// How long to wait for `/health` (default 30 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = Some(timeout);
        self
    }

    /// Spawns `s3cached serve` and waits until `GET /health` on the admin port answers 200.
    pub fn start(self) -> S3Cached {
        let (port, admin_port) = self.ports.unwrap_or_else(|| (free_port(), free_port()));
        // Under target/tmp, so that even a process killed before it could clean up leaves
        // nothing behind that `cargo clean` does not remove.
        let dir = make_temp_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "s3cached");
        let log_path = dir.join("s3cached.log");
        let binary = env!("CARGO_BIN_EXE_s3cached");

        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--admin-listen".to_owned(),
            format!("127.0.0.1:{admin_port}"),
        ];
        args.extend(self.args);
        {
            let mut log = log_file(&log_path);
            let _ = writeln!(log, "+ {binary} {}", args.join(" "));
        }

        let mut cmd = Command::new(binary);
        cmd.args(&args)
            // Plain log lines, so tests can search them (a test's own env may override it).
            .env("NO_COLOR", "1")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log_file(&log_path))
            .stderr(log_file(&log_path));
        let child = spawn_tied_to_process(cmd).unwrap_or_else(|e| panic!("spawn {binary}: {e}"));

        let mut instance = S3Cached {
            port,
            admin_port,
            dir,
            log_path,
            child: Some(child),
        };
        instance.wait_healthy(
            self.startup_timeout
                .unwrap_or_else(|| timeout_from_env(S3CACHED_STARTUP_TIMEOUT)),
        );
        instance
    }
}

/// A running `s3cached serve` on free loopback ports. Stopped (SIGTERM, then SIGKILL) on drop.
pub struct S3Cached {
    port: u16,
    admin_port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl S3Cached {
    /// Options for a start with more control (ports, timeout).
    pub fn builder() -> S3CachedBuilder {
        S3CachedBuilder::default()
    }

    /// Runs `s3cached serve --listen 127.0.0.1:P --admin-listen 127.0.0.1:Q <args…>` with `envs`
    /// added to the environment, and waits until it is healthy. Blocks; callable from sync and
    /// async tests.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> S3Cached {
        envs.iter()
            .fold(S3Cached::builder().args(args.iter().copied()), |b, (k, v)| {
                b.env(*k, *v)
            })
            .start()
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let url = format!("{}/health", self.admin_endpoint());
        wait_for_http_200("s3cached", &url, self.child.as_mut(), &self.log_path, timeout);
    }

    /// `http://127.0.0.1:P`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:Q`, the admin endpoint (`/health`, `/metrics`).
    pub fn admin_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The S3 port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The process id, e.g. to send it a signal.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// An S3 client pointed at s3cached (path-style, us-east-1), without retries so each call
    /// is exactly one request.
    pub fn client(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
        s3_client_with_attempts(&self.endpoint(), access_key, secret_key, 1)
    }

    /// Waits until `/health` says ok (the memory tier of memory+redis is in use only then);
    /// panics after 15 s.
    pub async fn wait_status_ok(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (_, body) = http_get(&format!("{}/health", self.admin_endpoint()))
                .await
                .expect("health");
            if body.contains(r#""status":"ok""#) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "never healthy: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of `GET /metrics` on the admin port; panics unless it answers 200.
    pub async fn metrics_text(&self) -> String {
        let url = format!("{}/metrics", self.admin_endpoint());
        match http_get(&url).await {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("GET {url} -> HTTP {status}: {body}"),
            Err(e) => panic!("{e}\n{}", log_tail(&self.log_path)),
        }
    }

    /// Sum of the series matching `query` (see [`metric_sum`]) in `/metrics`; 0 when none
    /// matches (a counter that has not been touched yet).
    pub async fn metric_value(&self, query: &str) -> f64 {
        metric_sum(&self.metrics_text().await, query).unwrap_or(0.0)
    }

    /// As [`S3Cached::metric_value`], but `None` when no series matches.
    pub async fn metric_value_opt(&self, query: &str) -> Option<f64> {
        metric_sum(&self.metrics_text().await, query)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log_contents(&self) -> String {
        read_log(&self.log_path)
    }

    /// The last lines of the log, for panic messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// The process's working directory (holds its log); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the process (SIGTERM, then SIGKILL after 5 s) and returns how it exited. The log
    /// stays readable through [`S3Cached::log_contents`] until the handle drops.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        signal(child.id(), libc::SIGTERM);
        if let Some(status) = wait_with_timeout(&mut child, Duration::from_secs(5)) {
            return Some(status);
        }
        let _ = child.kill();
        wait_with_timeout(&mut child, Duration::from_secs(5))
    }
}

impl Drop for S3Cached {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
