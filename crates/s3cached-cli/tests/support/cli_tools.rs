//! Out-of-process S3 clients from the test virtualenv: the aws cli (v1) with config files of its
//! own, and Python scripts (boto3/botocore); running a command with a timeout and capturing what
//! it printed; and the s3cached those clients talk to in front of the shared SeaweedFS, with
//! client credentials unlike the origin's (so every passing request also proves that s3cached
//! verified the client's signature and signed its own request to the origin).

use std::ffi::OsStr;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::REGION;
use super::proxy::S3Cached;
use super::seaweed::SeaweedFs;
use super::util::{unique_bucket, venv_bin};

/// Credentials the clients sign with (the origin's are `SEAWEED_ACCESS_KEY`/`_SECRET_KEY`).
pub const CLIENT_KEY: &str = "client-key";
pub const CLIENT_SECRET: &str = "client-secret";

/// Longest any single client command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory under the cargo target dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_bucket(prefix));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), seeded from the clock so that runs differ.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What a finished command printed.
pub struct Output {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} -> exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.what,
            self.code,
            tail(&self.stdout, 4000),
            tail(&self.stderr, 8000)
        )
    }

    pub fn expect_success(self) -> Output {
        assert!(self.success(), "command failed: {}", self.describe());
        self
    }
}

pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `cmd` to completion (killing it after `timeout`), capturing stdout and stderr.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(e) => panic!("wait for {what}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let output = Output {
        what,
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    };
    assert!(
        !timed_out,
        "command did not finish within {timeout:?}: {}",
        output.describe()
    );
    output
}

/// Removes every AWS_* and S3CACHED_* variable the test process may have from `cmd`'s
/// environment, so only what a test sets explicitly reaches the child.
pub fn clear_aws_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("AWS_") || name_str.starts_with("S3CACHED_") {
            cmd.env_remove(&name);
        }
    }
}

/// The aws cli (v1) with its own config files, credentials and endpoint. `server_log` gives
/// the log of the server it talks to, shown when a command fails.
pub struct AwsCli<'a> {
    endpoint: String,
    access_key: String,
    secret_key: String,
    home: TempDir,
    server_log: Box<dyn Fn() -> String + 'a>,
}

impl<'a> AwsCli<'a> {
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str, server_log: impl Fn() -> String + 'a) -> AwsCli<'a> {
        let home = TempDir::new("awscli-home");
        // Path-style addressing: the endpoint is an IP address, and that is what the proxy is
        // started for (virtual-hosted style has its own test).
        fs::write(home.join("config"), "[default]\ns3 =\n    addressing_style = path\n").expect("write aws config");
        fs::write(home.join("credentials"), "").expect("write aws credentials file");
        AwsCli {
            endpoint: endpoint.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            home,
            server_log: Box::new(server_log),
        }
    }

    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(venv_bin("aws"));
        clear_aws_env(&mut cmd);
        cmd.args(args)
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", self.home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            // One attempt per request: a retry must not hide a failed request.
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("HOME", self.home.path())
            .current_dir(self.home.path());
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.command(args), COMMAND_TIMEOUT)
    }

    /// `aws s3 cp FROM TO` (a local path or an `s3://` URL on either side); must succeed.
    pub fn cp(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Output {
        self.ok([OsStr::new("s3"), OsStr::new("cp"), from.as_ref(), to.as_ref()])
    }

    pub fn ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.run(args);
        if !output.success() {
            panic!(
                "command failed: {}\n--- server log (tail) ---\n{}",
                output.describe(),
                tail(&(self.server_log)(), 8000)
            );
        }
        output
    }
}

/// Keys printed by `aws s3 ls --recursive` (lines `DATE TIME SIZE KEY`; keys may hold spaces).
pub fn ls_recursive_entries(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut rest = line;
            let mut fields = Vec::new();
            for _ in 0..3 {
                rest = rest.trim_start();
                let end = rest
                    .find(char::is_whitespace)
                    .unwrap_or_else(|| panic!("unexpected `aws s3 ls` line {line:?}"));
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            let size = fields[2]
                .parse()
                .unwrap_or_else(|e| panic!("size in `aws s3 ls` line {line:?}: {e}"));
            // Exactly one separator space before the key.
            let key = rest
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("unexpected `aws s3 ls` line {line:?}"));
            (size, key.to_owned())
        })
        .collect()
}

/// Runs a Python script with the virtualenv's interpreter; `envs` pass the inputs. The scripts
/// exit non-zero with a message on the first failed check and print `ALL OK` at the end.
pub fn run_python(dir: &TempDir, name: &str, script: &str, envs: &[(&str, String)]) -> Output {
    run_python_within(dir, name, script, envs, COMMAND_TIMEOUT)
}

/// [`run_python`] for scripts that may run longer than [`COMMAND_TIMEOUT`].
pub fn run_python_within(
    dir: &TempDir,
    name: &str,
    script: &str,
    envs: &[(&str, String)],
    timeout: Duration,
) -> Output {
    let path = dir.join(name);
    fs::write(&path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let mut cmd = Command::new(venv_bin("python"));
    clear_aws_env(&mut cmd);
    cmd.arg(&path)
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(dir.path());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run(cmd, timeout)
}

/// s3cached in front of the shared SeaweedFS, with client credentials of its own.
pub fn start_proxy(seaweed: &SeaweedFs, extra: &[&str]) -> S3Cached {
    S3Cached::builder()
        .origin(&seaweed.endpoint())
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .args(extra.iter().copied())
        .start()
}

/// Panics with the proxy's log appended.
pub fn fail_with_log(proxy: &S3Cached, message: String) -> ! {
    panic!(
        "{message}\n--- s3cached log (tail) ---\n{}",
        tail(&proxy.log_contents(), 8000)
    )
}
