//! Development mode: no origin, a local directory served as S3, driven by the aws cli.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::cli_tools::{AwsCli, TempDir, clear_aws_env, ls_recursive_entries, random_bytes};
use support::clients::http_get;
use support::util::{free_port, unique_bucket};

/// Credentials development mode accepts when none are configured.
const DEV_KEY: &str = "s3cached";
const DEV_SECRET: &str = "s3cached-dev-secret";

// ---------------------------------------------------------------------------------------------
// 5. Development mode: no origin, a local directory served as S3
// ---------------------------------------------------------------------------------------------

/// An `s3cached serve` started by hand (the harness's builder cannot clear the environment).
struct DevServer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl DevServer {
    fn start(cwd: &Path) -> DevServer {
        let port = free_port();
        let admin_port = free_port();
        let log = cwd.join("s3cached.log");
        let log_file = || {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("open dev-mode log")
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
        clear_aws_env(&mut cmd);
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .env("NO_COLOR", "1")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log_file())
        .stderr(log_file());
        {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: only async-signal-safe calls (prctl) run between fork and exec.
            // The child dies with the thread that spawned it (this test's thread), so a test
            // process that dies before `Drop` runs leaves nothing behind.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("spawn s3cached in development mode");
        let mut server = DevServer {
            child: Some(child),
            port,
            log,
        };

        let health = format!("http://127.0.0.1:{admin_port}/health");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "s3cached (development mode) exited during startup: {status}\n{}",
                    server.log_contents()
                );
            }
            let probe = support::util::block_on_thread(async {
                tokio::time::timeout(Duration::from_secs(2), http_get(&health)).await
            });
            if let Ok(Ok((200, _))) = probe {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "s3cached (development mode) not healthy after 30 s: {probe:?}\n{}",
                    server.log_contents()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_contents(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn development_mode_serves_a_local_directory() {
    let cwd = TempDir::new("devmode");
    let server = DevServer::start(cwd.path());
    let log = server.log_contents();
    assert!(
        log.contains("DEVELOPMENT MODE"),
        "the startup log does not say DEVELOPMENT MODE:\n{log}"
    );

    let aws = AwsCli::new(&server.endpoint(), DEV_KEY, DEV_SECRET, || server.log_contents());
    let bucket = unique_bucket("devmode");
    let s3_bucket = format!("s3://{bucket}");
    aws.ok(["s3", "mb", &s3_bucket]);
    let body = random_bytes(100_000);
    let up = cwd.join("upload.bin");
    fs::write(&up, &body).expect("write upload.bin");
    aws.cp(&up, format!("{s3_bucket}/docs/upload file.bin"));
    let listing = aws.ok(["s3", "ls", "--recursive", &format!("{s3_bucket}/")]);
    assert_eq!(
        ls_recursive_entries(&listing.stdout),
        vec![(body.len() as u64, "docs/upload file.bin".to_owned())],
        "{}",
        listing.describe()
    );
    let down = cwd.join("download.bin");
    aws.cp(format!("{s3_bucket}/docs/upload file.bin"), &down);
    assert!(
        fs::read(&down).expect("read download.bin") == body,
        "downloaded file differs from the uploaded one"
    );

    // The data lives in ./s3cached-data of the server's working directory.
    let stored = cwd.join("s3cached-data").join(&bucket).join("docs/upload file.bin");
    assert!(
        fs::read(&stored).map(|b| b == body).unwrap_or(false),
        "expected the object's bytes in {}",
        stored.display()
    );

    // Credentials other than the development pair are refused.
    let intruder = AwsCli::new(&server.endpoint(), DEV_KEY, "wrong-secret", || server.log_contents());
    let refused = intruder.run(["s3", "ls", &format!("{s3_bucket}/")]);
    assert!(
        !refused.success() && (refused.stderr.contains("SignatureDoesNotMatch") || refused.stderr.contains("403")),
        "a wrong secret in development mode: {}",
        refused.describe()
    );
}
