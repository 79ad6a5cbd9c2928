//! `s3cached serve`: flags, their environment fallbacks, and the mapping to the library's
//! `ServeConfig`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use s3cached::config::{
    ApplyConfig, BlockPolicy, BreakerConfig, BusConfig, CachePolicy, ClientAuth, Credentials,
    DEFAULT_ORIGIN_PARALLELISM, DEFAULT_REDIS_CONNECTIONS, EventsConfig, EvictionPolicy, Freshness, HedgeAfter,
    HydrationRule, MemoryConfig, OriginConfig, RedisConfig, RedisTarget, ServeConfig, SqsConfig, TierConfig, TlsConfig,
    TtlRule,
};
use s3cached::doors::hot_path::cpu_turn::DEFAULT_YIELD_AFTER;
use s3cached::model::size::ByteSize;
use s3cached::server::Server;
use tracing::{info, warn};

/// Access key used in development mode when no client credentials are configured.
pub const DEV_ACCESS_KEY: &str = "s3cached";
/// Secret key used in development mode when no client credentials are configured.
pub const DEV_SECRET_KEY: &str = "s3cached-dev-secret";

#[derive(Args, Debug)]
#[command(after_help = "\
ORIGIN SELECTION:
  --local-dir given                            -> development mode: that directory served as S3
  else --origin-endpoint (or AWS_ENDPOINT_URL) -> that S3-compatible endpoint
  else --origin-region (or AWS_REGION)         -> AWS S3 in that region
  else                                         -> development mode in ./s3cached-data

CLIENT CREDENTIALS:
  --access-key/--secret-key, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; in development mode
  with neither, the fixed pair s3cached / s3cached-dev-secret.")]
pub struct ServeArgs {
    /// Read settings from this TOML file: keys are these flags' names without the leading `--`
    /// (see examples/s3cached.toml). Flags and environment variables win over the file.
    #[arg(long, env = "S3CACHED_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address of the S3 endpoint.
    #[arg(long, env = "S3CACHED_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Serve HTTPS (HTTP/2 or HTTP/1.1 by ALPN) on --listen with this PEM certificate chain,
    /// leaf first; needs --tls-key. Both files are read again when they change (checked every
    /// second, and on SIGHUP): new connections get the new certificate, open ones continue.
    #[arg(long, env = "S3CACHED_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "S3CACHED_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Address serving /metrics and /health (`off` disables). Kept apart from the S3 port so
    /// no bucket name can collide with them.
    #[arg(long, env = "S3CACHED_ADMIN_LISTEN", default_value = "127.0.0.1:9091")]
    admin_listen: String,

    /// Origin S3 endpoint URL (SeaweedFS, MinIO, Ceph, …). Falls back to AWS_ENDPOINT_URL.
    #[arg(long, env = "S3CACHED_ORIGIN_ENDPOINT")]
    origin_endpoint: Option<String>,

    /// Origin region. Falls back to AWS_REGION, then AWS_DEFAULT_REGION.
    #[arg(long, env = "S3CACHED_ORIGIN_REGION")]
    origin_region: Option<String>,

    /// Address origin buckets in the path instead of the host name (most non-AWS servers).
    #[arg(long, env = "S3CACHED_ORIGIN_PATH_STYLE")]
    origin_path_style: bool,

    /// How long the origin may take to start answering (a hung origin then fails like a 5xx,
    /// so --stale-if-error can answer). Streaming a body afterwards is not bounded.
    #[arg(long, env = "S3CACHED_ORIGIN_TIMEOUT", default_value = "10s")]
    origin_timeout: humantime::Duration,

    /// Hedge the cache's own origin reads (fills, block fetches): a second request races one
    /// that has not answered after this long (`50ms`), or after the p95/p99 of recent answer
    /// times; the first answer wins. At most 5 % of reads are hedged. `off` by default.
    #[arg(long, env = "S3CACHED_HEDGE_AFTER", default_value = "off")]
    hedge_after: String,

    /// Origin access key id. Default: the AWS credential chain (AWS_ACCESS_KEY_ID, profiles, IMDS).
    #[arg(long, env = "S3CACHED_ORIGIN_ACCESS_KEY", requires = "origin_secret_key")]
    origin_access_key: Option<String>,

    /// Origin secret access key.
    #[arg(
        long,
        env = "S3CACHED_ORIGIN_SECRET_KEY",
        hide_env_values = true,
        requires = "origin_access_key"
    )]
    origin_secret_key: Option<String>,

    /// Serve this directory as the origin (development mode; created when missing). Given
    /// explicitly, it wins over any endpoint or region. Default in development mode:
    /// ./s3cached-data.
    #[arg(long, env = "S3CACHED_LOCAL_DIR")]
    local_dir: Option<PathBuf>,

    /// Access key clients sign with. Falls back to AWS_ACCESS_KEY_ID.
    #[arg(long, env = "S3CACHED_ACCESS_KEY", requires = "secret_key")]
    access_key: Option<String>,

    /// Secret key clients sign with. Falls back to AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "S3CACHED_SECRET_KEY", hide_env_values = true, requires = "access_key")]
    secret_key: Option<String>,

    /// Client identities and what each may do (TOML; see examples/identities.toml). Reloaded
    /// on SIGHUP and when the file changes; a bad file is refused and the rules in force stay.
    /// With it, only --access-key/--secret-key add a full-access identity (no fallback to
    /// AWS_ACCESS_KEY_ID or the development pair).
    #[arg(long, env = "S3CACHED_IDENTITIES")]
    identities: Option<PathBuf>,

    /// Also accept unsigned requests, for reads only (GET, HEAD and listings: public read).
    /// Unsigned writes, deletes and bucket changes are refused with AccessDenied.
    #[arg(long, env = "S3CACHED_ALLOW_ANONYMOUS")]
    allow_anonymous: bool,

    /// Base domain for virtual-hosted-style requests (`bucket.DOMAIN`); repeatable.
    #[arg(long = "domain", env = "S3CACHED_DOMAINS", value_delimiter = ',')]
    domains: Vec<String>,

    /// Memory tier capacity (bodies plus per-entry overhead), e.g. 256MiB, 4GiB.
    #[arg(long, env = "S3CACHED_MEMORY_CAPACITY", default_value = "256MiB")]
    memory_capacity: ByteSize,

    /// Largest object cached; larger ones stream through without being buffered.
    #[arg(long, env = "S3CACHED_MAX_OBJECT_SIZE", default_value = "8MiB")]
    max_object_size: ByteSize,

    /// Size of the blocks that objects larger than --max-object-size, and ranged reads, are
    /// cached in (whatever range a client asks for, whole aligned blocks are read).
    #[arg(long, env = "S3CACHED_BLOCK_SIZE", default_value = "1MiB")]
    block_size: ByteSize,

    /// Largest object cached as blocks (0 turns blocks off); larger ones stream through.
    #[arg(long, env = "S3CACHED_MAX_BLOCK_CACHED_OBJECT_SIZE", default_value = "5GiB")]
    max_block_cached_object_size: ByteSize,

    /// The longest a block is kept (`none`: until evicted by capacity). Blocks are named by
    /// the object's ETag, so they outlive the metadata's --ttl: a revalidated object keeps
    /// its blocks; this only frees blocks of versions nobody reads any more.
    #[arg(long, env = "S3CACHED_BLOCK_TTL", default_value = "1d")]
    block_ttl: String,

    /// Memory for blocks, besides --memory-capacity (blocks also go to Redis with a Redis tier).
    #[arg(long, env = "S3CACHED_BLOCK_MEMORY_CAPACITY", default_value = "512MiB")]
    block_memory_capacity: ByteSize,

    /// Bytes held for the cache while in flight, process-wide: fills, block reads from the
    /// origin and uploads copied for write-through. Past it, requests stream through uncached.
    #[arg(long, env = "S3CACHED_MAX_IN_FLIGHT", default_value = "256MiB")]
    max_in_flight: ByteSize,

    /// Ranged origin GETs of up to 8 MiB that one read from blocks keeps in flight ahead of
    /// the client (S3 serves one object fastest over several connections).
    #[arg(long, env = "S3CACHED_ORIGIN_PARALLELISM", default_value_t = DEFAULT_ORIGIN_PARALLELISM,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    origin_parallelism: u64,

    /// Bytes that read-ahead for sequential readers may have in flight (0 turns it off).
    #[arg(long, env = "S3CACHED_PREFETCH_BUDGET", default_value = "64MiB")]
    prefetch_budget: ByteSize,

    /// Lifetime of a cache entry (e.g. 30s, 5m, 1h), or `none` to keep entries until evicted.
    /// Bounds staleness for objects written to the origin without going through s3cached.
    #[arg(long, env = "S3CACHED_TTL", default_value = "5m")]
    ttl: String,

    /// Per-prefix lifetime, `BUCKET/PREFIX=DURATION` (e.g. media/thumbs/=1h30m) or `=none` to pin;
    /// repeatable; the longest matching prefix wins over --ttl.
    #[arg(long = "ttl-rule", env = "S3CACHED_TTL_RULES", value_delimiter = ',')]
    ttl_rules: Vec<TtlRule>,

    /// Do not revalidate expired entries (by default they are kept one more TTL and renewed by
    /// a conditional GET when the origin answers 304).
    #[arg(long, env = "S3CACHED_NO_REVALIDATE")]
    no_revalidate: bool,

    /// Serve an expired entry at once for up to this long past its TTL while one background
    /// request revalidates it (0s: off).
    #[arg(long, env = "S3CACHED_STALE_WHILE_REVALIDATE", default_value = "0s")]
    stale_while_revalidate: humantime::Duration,

    /// Serve an expired entry for up to this long past its TTL when the origin fails with a
    /// 5xx or does not answer (0s: off).
    #[arg(long, env = "S3CACHED_STALE_IF_ERROR", default_value = "0s")]
    stale_if_error: humantime::Duration,

    /// Cache the origin's NoSuchKey answers for this long (`off`, or e.g. 5s). Any write or
    /// event for the key clears it.
    #[arg(long, env = "S3CACHED_NEGATIVE_TTL", default_value = "off")]
    negative_ttl: String,

    /// Accept S3 event notifications at POST /events on the admin listener from requests
    /// carrying `Authorization: Bearer TOKEN` (MinIO, Ceph RGW and other webhook senders).
    #[arg(long, env = "S3CACHED_WEBHOOK_TOKEN", hide_env_values = true)]
    webhook_token: Option<String>,

    /// Poll this SQS queue for S3 event notifications (AWS S3, SNS-wrapped or EventBridge).
    #[arg(long, env = "S3CACHED_SQS_QUEUE_URL")]
    sqs_queue_url: Option<String>,

    /// SQS endpoint URL, for SQS-compatible servers (default: AWS in the origin's region).
    #[arg(long, env = "S3CACHED_SQS_ENDPOINT")]
    sqs_endpoint: Option<String>,

    /// Long-poll wait per SQS receive (at most 20s).
    #[arg(long, env = "S3CACHED_SQS_WAIT", default_value = "20s")]
    sqs_wait: humantime::Duration,

    /// Load objects created under BUCKET[/PREFIX] into the cache when their event arrives
    /// (write-through for writes made at the origin); other created objects are invalidated.
    /// Repeatable.
    #[arg(long = "hydrate", env = "S3CACHED_HYDRATE", value_delimiter = ',')]
    hydrate: Vec<HydrationRule>,

    /// Largest object hydrated from events (default: --max-object-size).
    #[arg(long, env = "S3CACHED_HYDRATE_MAX_SIZE")]
    hydrate_max_size: Option<ByteSize>,

    /// Load s3://BUCKET/PREFIX into the cache at start-up (in the background). Repeatable.
    #[arg(long = "warm", env = "S3CACHED_WARM", value_delimiter = ',')]
    warm: Vec<HydrationRule>,

    /// Objects loaded at once during warm-up.
    #[arg(long, env = "S3CACHED_WARM_CONCURRENCY", default_value_t = 8)]
    warm_concurrency: usize,

    /// Which tiers hold entries: memory (in-process), redis (shared), or memory+redis (memory
    /// over a shared Redis, kept coherent across processes).
    #[arg(long, env = "S3CACHED_TIER", value_enum, default_value_t = TierMode::Memory)]
    tier: TierMode,

    /// Redis/Valkey URL for the redis tiers: redis://[user:password@]host:port[/db], or
    /// rediss:// for TLS.
    #[arg(long, env = "S3CACHED_REDIS_URL", conflicts_with = "redis_cluster")]
    redis_url: Option<String>,

    /// Redis Cluster seed nodes (host:port,… or URLs), for cluster mode.
    #[arg(long, env = "S3CACHED_REDIS_CLUSTER", value_delimiter = ',')]
    redis_cluster: Vec<String>,

    /// In cluster mode, read from replicas.
    #[arg(long, env = "S3CACHED_REDIS_READ_FROM_REPLICAS")]
    redis_read_from_replicas: bool,

    /// Bound on every Redis call; past it the request is answered from the origin.
    #[arg(long, env = "S3CACHED_REDIS_TIMEOUT", default_value = "100ms")]
    redis_timeout: humantime::Duration,

    /// Multiplexed connections to Redis (per node in cluster mode) that calls are spread
    /// over; the default was measured on a 2-core machine (BENCHMARKS.md).
    #[arg(long, env = "S3CACHED_REDIS_CONNECTIONS", default_value_t = DEFAULT_REDIS_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    redis_connections: usize,

    /// Largest object stored in Redis (larger cacheable objects stay in the memory tier).
    #[arg(long, env = "S3CACHED_REDIS_INLINE_LIMIT", default_value = "1MiB")]
    redis_inline_limit: ByteSize,

    /// How long a write waits for other processes to confirm they dropped the old object
    /// (memory+redis).
    #[arg(long, env = "S3CACHED_COHERENCE_TIMEOUT", default_value = "500ms")]
    coherence_timeout: humantime::Duration,

    /// Memory tier eviction policy.
    #[arg(long, env = "S3CACHED_EVICTION", value_enum, default_value_t = Eviction::Lru)]
    eviction: Eviction,

    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[arg(long, env = "S3CACHED_SHUTDOWN_GRACE", default_value = "30s")]
    shutdown_grace: humantime::Duration,

    /// Answer every request through the full S3 request handling, including plain GET/HEAD
    /// hits (memory or Redis) the hot path would answer directly (for comparison and
    /// troubleshooting).
    #[arg(long, env = "S3CACHED_NO_HOT_PATH")]
    no_hot_path: bool,

    /// How long the hot path answers hits back to back before it yields its CPU core to
    /// whatever else waits for it (clients on the same host); `0` keeps the core until the
    /// kernel takes it. Without it, a busy thread can hold a core for a whole scheduler tick.
    #[arg(long, env = "S3CACHED_YIELD_AFTER", default_value_t = DEFAULT_YIELD_AFTER.into())]
    yield_after: humantime::Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TierMode {
    /// In-process memory tier only.
    Memory,
    /// Shared Redis/Valkey only.
    Redis,
    /// Memory over Redis.
    #[value(name = "memory+redis")]
    MemoryRedis,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Eviction {
    /// Least recently used; every new entry is admitted.
    Lru,
    /// TinyLFU admission: resists scans, may decline new entries.
    TinyLfu,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_ttl(s: &str) -> anyhow::Result<Option<Duration>> {
    parse_lifetime("--ttl", s)
}

/// A positive duration, or `none` for no expiry; errors name `flag`.
fn parse_lifetime(flag: &str, s: &str) -> anyhow::Result<Option<Duration>> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let d: Duration = s
        .parse::<humantime::Duration>()
        .with_context(|| format!("invalid {flag} {s:?}: expected a duration like 30s, 5m, 1h, or `none`"))?
        .into();
    if d.is_zero() {
        bail!("invalid {flag} {s:?}: must be positive (use `none` for no expiry)");
    }
    Ok(Some(d))
}

/// `off`, a duration, or `p<N>` (a percentile of the origin's recent answer times).
fn parse_hedge_after(s: &str) -> anyhow::Result<HedgeAfter> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(HedgeAfter::Off);
    }
    if let Some(p) = s.strip_prefix(['p', 'P']) {
        return match p.parse::<u8>() {
            Ok(p @ 50..=99) => Ok(HedgeAfter::Percentile(p)),
            _ => bail!("invalid --hedge-after {s:?}: a percentile is p50 to p99"),
        };
    }
    let d: Duration = s
        .parse::<humantime::Duration>()
        .with_context(|| format!("invalid --hedge-after {s:?}: expected `off`, a duration like 50ms, or p95/p99"))?
        .into();
    if d.is_zero() {
        bail!("invalid --hedge-after {s:?}: must be positive (use `off` for no hedging)");
    }
    Ok(HedgeAfter::After(d))
}

fn parse_negative_ttl(s: &str) -> anyhow::Result<Option<Duration>> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_ttl(s).with_context(|| format!("invalid --negative-ttl {s:?}: expected `off` or a duration like 5s"))
}

impl ServeArgs {
    /// The library configuration these flags describe.
    pub fn into_config(self) -> anyhow::Result<ServeConfig> {
        self.config(true)
    }

    /// The library configuration for a process that serves no client (`warm`): the same, but
    /// no client credentials are asked for.
    pub fn into_config_without_clients(self) -> anyhow::Result<ServeConfig> {
        self.config(false)
    }

    fn config(self, serves_clients: bool) -> anyhow::Result<ServeConfig> {
        if let Some(path) = &self.config {
            info!(path = %path.display(), "settings from config file");
        }
        let endpoint = self.origin_endpoint.or_else(|| env_nonempty("AWS_ENDPOINT_URL"));
        let region = self
            .origin_region
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"));
        let dev_mode = self.local_dir.is_some() || (endpoint.is_none() && region.is_none());
        let origin = if dev_mode {
            OriginConfig::LocalDir(self.local_dir.unwrap_or_else(|| PathBuf::from("s3cached-data")))
        } else {
            if let Some(url) = &endpoint {
                let ok = url.starts_with("http://") || url.starts_with("https://");
                if !ok {
                    bail!("invalid --origin-endpoint {url:?}: expected an http:// or https:// URL");
                }
            }
            OriginConfig::S3 {
                endpoint,
                region: region.unwrap_or_else(|| "us-east-1".to_owned()),
                force_path_style: self.origin_path_style,
                credentials: self
                    .origin_access_key
                    .zip(self.origin_secret_key)
                    .map(|(access_key, secret_key)| Credentials { access_key, secret_key }),
                first_byte_timeout: self.origin_timeout.into(),
                hedge_after: parse_hedge_after(&self.hedge_after)?,
            }
        };
        let client = self
            .access_key
            .zip(self.secret_key)
            .or_else(|| {
                self.identities
                    .is_none()
                    .then(|| env_nonempty("AWS_ACCESS_KEY_ID").zip(env_nonempty("AWS_SECRET_ACCESS_KEY")))?
            })
            .or_else(|| {
                (dev_mode && self.identities.is_none()).then(|| {
                    warn!(
                        access_key = DEV_ACCESS_KEY,
                        secret_key = DEV_SECRET_KEY,
                        "no client credentials configured; development mode accepts this fixed pair"
                    );
                    (DEV_ACCESS_KEY.to_owned(), DEV_SECRET_KEY.to_owned())
                })
            });
        let credentials: Vec<Credentials> = client
            .map(|(access_key, secret_key)| Credentials { access_key, secret_key })
            .into_iter()
            .collect();
        if serves_clients && credentials.is_empty() && !self.allow_anonymous && self.identities.is_none() {
            bail!(
                "no client credentials: set --access-key/--secret-key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), \
                 --identities FILE, or pass --allow-anonymous"
            );
        }
        let admin_listen = if self.admin_listen.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(self.admin_listen.parse().with_context(|| {
                format!(
                    "invalid --admin-listen {:?}: expected HOST:PORT or `off`",
                    self.admin_listen
                )
            })?)
        };
        if self.max_object_size > self.memory_capacity {
            bail!(
                "--max-object-size ({}) is larger than --memory-capacity ({})",
                self.max_object_size,
                self.memory_capacity
            );
        }
        if self.block_size.bytes() < 4096 || self.block_size.bytes() > 64 << 20 {
            bail!(
                "invalid --block-size {}: must be between 4KiB and 64MiB",
                self.block_size
            );
        }
        let redis_target = match (self.redis_url, self.redis_cluster.is_empty()) {
            (Some(url), _) => Some(RedisTarget::Standalone { url }),
            (None, false) => Some(RedisTarget::Cluster {
                nodes: self.redis_cluster,
                read_from_replicas: self.redis_read_from_replicas,
            }),
            (None, true) => None,
        };
        let redis = |target: RedisTarget| RedisConfig {
            target,
            timeout: self.redis_timeout.into(),
            inline_limit: self.redis_inline_limit.bytes(),
            breaker: BreakerConfig::default(),
            connections: self.redis_connections,
        };
        let tier = match (self.tier, redis_target) {
            (TierMode::Memory, _) => TierConfig::Memory,
            (TierMode::Redis, Some(t)) => TierConfig::Redis(redis(t)),
            (TierMode::MemoryRedis, Some(t)) => TierConfig::MemoryRedis(
                redis(t),
                BusConfig {
                    ack_timeout: self.coherence_timeout.into(),
                    ..BusConfig::default()
                },
            ),
            (_, None) => bail!("--tier {:?} needs --redis-url or --redis-cluster", self.tier),
        };
        let sqs = self.sqs_queue_url.map(|queue_url| SqsConfig {
            queue_url,
            endpoint: self.sqs_endpoint,
            region: match &origin {
                OriginConfig::S3 { region, .. } => region.clone(),
                OriginConfig::LocalDir(_) => "us-east-1".to_owned(),
            },
            credentials: match &origin {
                OriginConfig::S3 { credentials, .. } => credentials.clone(),
                OriginConfig::LocalDir(_) => None,
            },
            wait: self.sqs_wait.into(),
            max_receives: 5,
        });
        let events = EventsConfig {
            sqs,
            apply: ApplyConfig {
                hydrate: self.hydrate,
                hydrate_max_size: self.hydrate_max_size.unwrap_or(self.max_object_size).bytes(),
            },
            warm: self.warm,
            warm_concurrency: self.warm_concurrency,
        };
        Ok(ServeConfig {
            events,
            listen: self.listen,
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| TlsConfig::new(cert, key)),
            admin_listen,
            domains: self.domains,
            origin,
            auth: ClientAuth {
                credentials,
                allow_anonymous: self.allow_anonymous,
                identities_file: self.identities,
                webhook_token: self.webhook_token.filter(|t| !t.is_empty()),
            },
            memory: MemoryConfig {
                capacity: self.memory_capacity.bytes(),
                block_capacity: self.block_memory_capacity.bytes(),
                eviction: match self.eviction {
                    Eviction::Lru => EvictionPolicy::Lru,
                    Eviction::TinyLfu => EvictionPolicy::TinyLfu,
                },
            },
            tier,
            policy: CachePolicy {
                max_object_size: self.max_object_size.bytes(),
                ttl: parse_ttl(&self.ttl)?,
                ttl_rules: self.ttl_rules,
                freshness: Freshness {
                    revalidate: !self.no_revalidate,
                    stale_while_revalidate: self.stale_while_revalidate.into(),
                    stale_if_error: self.stale_if_error.into(),
                    negative_ttl: parse_negative_ttl(&self.negative_ttl)?,
                },
                blocks: BlockPolicy {
                    block_size: self.block_size.bytes(),
                    max_object_size: self.max_block_cached_object_size.bytes(),
                    coalesce: BlockPolicy::default().coalesce.max(self.block_size.bytes()),
                    origin_parallelism: self.origin_parallelism,
                    prefetch_budget: self.prefetch_budget.bytes(),
                    prefetch_max_window: BlockPolicy::default().prefetch_max_window.max(self.block_size.bytes()),
                    ttl: parse_lifetime("--block-ttl", &self.block_ttl)?,
                },
                max_in_flight: self.max_in_flight.bytes(),
            },
            shutdown_grace: self.shutdown_grace.into(),
            hot_path: !self.no_hot_path,
            yield_after: Some(Duration::from(self.yield_after)).filter(|d| !d.is_zero()),
        })
    }
}

/// Runs `serve` until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let (memory_capacity, max_object_size, ttl) = (
        ByteSize(config.memory.capacity),
        ByteSize(config.policy.max_object_size),
        config.policy.ttl,
    );
    // Logged once the settings proved usable, so that a bad one (a TLS file, say) is the
    // only line printed.
    let server = Server::bind(config).await?;
    info!(%memory_capacity, %max_object_size, ?ttl, "cache configuration");
    server.run(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests;
