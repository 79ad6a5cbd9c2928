//! The servers a run measures, and their lifetime.
//!
//! Embedded servers (the s3s-fs origin, the latency relay, one s3cached per tier) run on a
//! runtime of their own, on their own threads, so the load generator's tasks and the
//! servers' tasks do not share a scheduler queue, and the servers' logs can be filtered apart
//! (`--server-log`). Everything embedded stops, and the temporary directory is removed, when
//! [`Targets`] is dropped or shut down.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3cached::config::{BreakerConfig, BusConfig, RedisConfig, RedisTarget};
use s3cached::config::{
    CachePolicy, ClientAuth, Credentials, EventsConfig, EvictionPolicy, MemoryConfig, OriginConfig, ServeConfig,
    TierConfig,
};
use s3cached::server::Server;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::Endpoint;
use crate::metrics::MetricsSource;
use crate::plan::{Keys, Plan, Tier};
use crate::relay::{Relay, Shaping};
use crate::workload::SplitMix;

/// Worker threads of the embedded servers' runtime.
const SERVER_THREADS: usize = 2;
/// How long a stopped embedded s3cached lets in-flight requests run.
const CACHE_GRACE: Duration = Duration::from_secs(1);
/// How long the embedded s3cached waits for the origin's first byte (the client's own request
/// timeout is longer, so a hung origin shows up as the cache's error answer).
const ORIGIN_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(20);

/// The origin as the bench sees it.
#[derive(Debug, Clone)]
pub struct OriginTarget {
    /// URL measured directly and fronted by the cache (the relay's, when there is one).
    pub url: String,
    /// Credentials.
    pub keys: Keys,
    /// What it is, for the report.
    pub description: String,
}

/// The origin, the relay and the way to get a cache in front of them.
pub struct Targets {
    runtime: Option<Runtime>,
    /// The origin.
    pub origin: OriginTarget,
    /// Whether the cache is started by the bench (else `--cache-endpoint`).
    pub embedded_cache: bool,
    external_cache: Option<(String, Keys, Option<String>)>,
    region: String,
    redis_url: Option<String>,
    origin_task: Option<JoinHandle<()>>,
    relay: Option<Relay>,
    dir: Option<tempfile::TempDir>,
}

/// One s3cached to measure.
pub struct CacheTarget {
    /// Tier label (`memory`, or `external`).
    pub tier: String,
    /// S3 endpoint URL.
    pub url: String,
    /// Client credentials.
    pub keys: Keys,
    /// Its metrics, when known.
    pub metrics: Option<MetricsSource>,
    stop: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl CacheTarget {
    /// Stops an embedded cache (waits for its shutdown); nothing for an external one.
    pub async fn stop(mut self) {
        if let Some((tx, task)) = self.stop.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(CACHE_GRACE * 3, task).await;
        }
    }
}

fn invented_keys(role: &str) -> Keys {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = SplitMix::new(nanos ^ u64::from(std::process::id()) ^ role.len() as u64);
    Keys {
        access: format!("bench-{role}-{:08x}", rng.next_u64() as u32),
        secret: format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
    }
}

fn server_runtime(log: &str) -> anyhow::Result<Runtime> {
    let filter = log.to_owned();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVER_THREADS)
        .thread_name("bench-server")
        .enable_all()
        .on_thread_start(move || {
            // The embedded servers log through a dispatcher of their own threads, filtered by
            // --server-log, instead of the command's (usually `info`) filter.
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_new(&filter)
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .finish();
            let guard = tracing::subscriber::set_default(subscriber);
            // Kept for the thread's lifetime.
            std::mem::forget(guard);
        })
        .build()
        .context("cannot start the embedded servers' runtime")
}

impl Targets {
    /// Starts whatever the plan embeds.
    ///
    /// # Errors
    /// When a server cannot start or an endpoint does not resolve.
    pub async fn start(plan: &Plan) -> anyhow::Result<Self> {
        let runtime = server_runtime(&plan.server_log)?;
        let handle = runtime.handle().clone();
        let mut dir = None;
        let mut origin_task = None;
        let (origin_url, keys, description) = match &plan.external.origin {
            Some((url, keys)) => (url.clone(), keys.clone(), format!("S3 endpoint {url}")),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("s3cached-bench-")
                    .tempdir()
                    .context("cannot create a temporary directory")?;
                let keys = invented_keys("origin");
                let root = tmp.path().join("origin");
                let k = keys.clone();
                let (addr, task) = handle
                    .spawn(async move { serve_origin(&root, &k).await })
                    .await
                    .context("embedded origin task failed")??;
                dir = Some(tmp);
                origin_task = Some(task);
                (
                    format!("http://{addr}"),
                    keys,
                    "embedded s3s-fs (temporary directory)".to_owned(),
                )
            }
        };
        let mut relay = None;
        let (url, description) = match plan.latency {
            None => (origin_url, description),
            Some(latency) => {
                let target = Endpoint::resolve(&origin_url).await?.addr;
                let shaping = Shaping::latency(latency.base).with_jitter(latency.jitter, plan.seed);
                let r = handle
                    .spawn(async move { Relay::start(target, shaping).await })
                    .await
                    .context("relay task failed")?
                    .context("cannot start the latency relay")?;
                let url = format!("http://{}", r.addr());
                relay = Some(r);
                let jitter = if latency.jitter.is_zero() {
                    String::new()
                } else {
                    format!(" ±{:?}", latency.jitter)
                };
                (
                    url,
                    format!("{description}, behind a relay adding {:?}{jitter}", latency.base),
                )
            }
        };
        Ok(Self {
            runtime: Some(runtime),
            origin: OriginTarget { url, keys, description },
            embedded_cache: plan.external.cache.is_none(),
            external_cache: plan.external.cache.clone(),
            region: plan.region.clone(),
            redis_url: plan.redis_url.clone(),
            origin_task,
            relay,
            dir,
        })
    }

    /// A cache to measure: a fresh embedded s3cached with `tier` and `capacity` in front of the
    /// origin, or the external one (`tier` and `capacity` then do not apply).
    ///
    /// # Errors
    /// When the embedded s3cached cannot start.
    pub async fn cache(&self, tier: Tier, capacity: u64, max_object_size: u64) -> anyhow::Result<CacheTarget> {
        if let Some((url, keys, metrics)) = &self.external_cache {
            let metrics = match metrics {
                Some(m) => Some(MetricsSource::new(m).await?),
                None => None,
            };
            return Ok(CacheTarget {
                tier: "external".to_owned(),
                url: url.clone(),
                keys: keys.clone(),
                metrics,
                stop: None,
            });
        }
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| anyhow!("embedded servers already stopped"))?;
        let keys = invented_keys("cache");
        let memory = MemoryConfig {
            capacity,
            eviction: EvictionPolicy::Lru,
            ..MemoryConfig::default()
        };
        let redis = || -> anyhow::Result<RedisConfig> {
            let url = self
                .redis_url
                .clone()
                .ok_or_else(|| anyhow!("tier {} needs --redis-url", tier.name()))?;
            Ok(RedisConfig {
                target: RedisTarget::Standalone { url },
                timeout: std::time::Duration::from_millis(250),
                inline_limit: max_object_size,
                breaker: BreakerConfig::default(),
                connections: s3cached::config::DEFAULT_REDIS_CONNECTIONS,
            })
        };
        let tier_config = match tier {
            Tier::Memory => TierConfig::Memory,
            Tier::Redis => TierConfig::Redis(redis()?),
            Tier::MemoryRedis => TierConfig::MemoryRedis(redis()?, BusConfig::default()),
        };
        if tier != Tier::Memory {
            flush_redis(&redis()?.target.urls()[0]).await?;
        }
        let config = ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            domains: Vec::new(),
            origin: OriginConfig::S3 {
                endpoint: Some(self.origin.url.clone()),
                region: self.region.clone(),
                force_path_style: true,
                credentials: Some(Credentials {
                    access_key: self.origin.keys.access.clone(),
                    secret_key: self.origin.keys.secret.clone(),
                }),
                first_byte_timeout: ORIGIN_FIRST_BYTE_TIMEOUT,
                hedge_after: s3cached::config::HedgeAfter::Off,
            },
            auth: ClientAuth {
                credentials: vec![Credentials {
                    access_key: keys.access.clone(),
                    secret_key: keys.secret.clone(),
                }],
                ..ClientAuth::default()
            },
            memory,
            tier: tier_config,
            events: EventsConfig::default(),
            policy: CachePolicy {
                max_object_size: max_object_size.min(capacity),
                // No expiry during a run: every miss is a cold or evicted object.
                ttl: None,
                ..CachePolicy::default()
            },
            shutdown_grace: CACHE_GRACE,
            hot_path: true,
            yield_after: Some(s3cached::doors::hot_path::cpu_turn::DEFAULT_YIELD_AFTER),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let (addr, admin, task) = runtime
            .spawn(async move {
                let server = Server::bind(config).await?;
                // memory+redis trusts its memory tier once its invalidation channel is up.
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
                while server.engine().tier().health() != s3cached::tier::TierHealth::Healthy {
                    if tokio::time::Instant::now() > deadline {
                        anyhow::bail!("the {} tier did not become healthy", server.engine().tier().name());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                let addr = server.local_addr()?;
                let admin = server.admin_addr();
                let task = tokio::spawn(server.run(async move {
                    let _ = rx.await;
                }));
                anyhow::Ok((addr, admin, task))
            })
            .await
            .context("embedded s3cached task failed")??;
        let metrics = match admin {
            Some(a) => Some(MetricsSource::new(&format!("http://{a}/metrics")).await?),
            None => None,
        };
        Ok(CacheTarget {
            tier: tier.name().to_owned(),
            url: format!("http://{addr}"),
            keys,
            metrics,
            stop: Some((tx, task)),
        })
    }

    /// Stops the embedded servers and removes the temporary directory.
    pub async fn shutdown(mut self) {
        self.stop_embedded();
    }

    fn stop_embedded(&mut self) {
        if let Some(task) = self.origin_task.take() {
            task.abort();
        }
        self.relay = None;
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Empties the scratch Redis so a Redis-backed tier starts cold.
async fn flush_redis(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url).with_context(|| format!("--redis-url {url:?}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connect to {url}"))?;
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut conn)
        .await
        .context("FLUSHDB")?;
    Ok(())
}

impl Drop for Targets {
    fn drop(&mut self) {
        self.stop_embedded();
    }
}

async fn serve_origin(root: &Path, keys: &Keys) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let fs =
        s3s_fs::FileSystem::new(root).map_err(|e| anyhow!("cannot serve {} as the origin: {e:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    let mut auth = SimpleAuth::new();
    auth.register(keys.access.clone(), keys.secret.clone().into());
    builder.set_auth(auth);
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the embedded origin")?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let conn = ConnBuilder::new(TokioExecutor::new());
        loop {
            let socket = match listener.accept().await {
                Ok((socket, _)) => socket,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let (conn, service) = (conn.clone(), service.clone());
            tokio::spawn(async move {
                let _ = conn.serve_connection(TokioIo::new(socket), service).await;
            });
        }
    });
    Ok((addr, task))
}
