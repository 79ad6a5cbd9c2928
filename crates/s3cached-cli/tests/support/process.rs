//! Child processes of the harness: spawning them so that they cannot outlive the test process,
//! signalling and waiting for them, their log files, and waiting for a server to answer.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::clients::http_get;
use super::util::block_on_thread;

/// Lines of a log shown in a panic message.
const LOG_TAIL_LINES: usize = 60;

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process, with `PR_SET_PDEATHSIG`
/// (SIGKILL) set in the child, so the child cannot outlive the test process.
pub fn spawn_tied_to_process(mut cmd: Command) -> io::Result<Child> {
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

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

pub fn signal_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// Polls `child` until it exits or `timeout` passes.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(25)),
            Ok(None) | Err(_) => return None,
        }
    }
}

pub fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log file {}: {e}", path.display()))
}

pub fn read_log(path: &Path) -> String {
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
