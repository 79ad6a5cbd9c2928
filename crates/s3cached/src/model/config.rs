//! Plain configuration data for the library: what to serve, which tiers, which origin, the
//! caching and freshness rules. The binary fills it from flags, environment variables and a
//! config file; nothing here depends on a command-line parser or on any layer above it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where objects really live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginConfig {
    /// Any S3-compatible endpoint, or AWS S3 by region when `endpoint` is `None`.
    S3 {
        /// Endpoint URL (`http://127.0.0.1:8333`); `None` means AWS S3 for `region`.
        endpoint: Option<String>,
        /// AWS region used for signing (and for the AWS endpoint).
        region: String,
        /// Address buckets in the path (`/bucket/key`) instead of the host name.
        force_path_style: bool,
        /// Credentials for the origin; `None` uses the AWS default provider chain.
        credentials: Option<Credentials>,
        /// How long the origin may take to start answering a request (streaming a body
        /// afterwards is not bounded).
        first_byte_timeout: Duration,
        /// When a second request races a slow read (GET, HEAD) of the cache's own.
        hedge_after: HedgeAfter,
    },
    /// Development mode: a local directory served as S3 (one sub-directory per bucket).
    LocalDir(PathBuf),
}

/// When an origin read the cache makes (a fill, a block fetch, a revalidation) is hedged: a
/// second, identical request races a first one that has not answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HedgeAfter {
    /// Never.
    #[default]
    Off,
    /// After this long without an answer.
    After(Duration),
    /// After this percentile (e.g. 95, 99) of the answer times seen lately.
    Percentile(u8),
}

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Memory-tier eviction policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// Least recently used; every insert is admitted.
    #[default]
    Lru,
    /// moka's TinyLFU: frequency-based admission, resists one-off scans, may refuse new entries.
    TinyLfu,
}

/// What may be cached and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// Objects larger than this are streamed through and never buffered.
    pub max_object_size: u64,
    /// Lifetime of an entry; `None` keeps entries until evicted or invalidated ("pinned").
    pub ttl: Option<Duration>,
    /// Per-prefix lifetimes; the longest matching prefix wins over `ttl`.
    pub ttl_rules: Vec<TtlRule>,
    /// Freshness after the TTL ran out (revalidation, stale serving, negative caching).
    pub freshness: Freshness,
    /// Objects above `max_object_size` and ranged reads, cached as blocks.
    pub blocks: BlockPolicy,
    /// Bytes held for the cache while in flight, process-wide: whole-object fills, block reads
    /// from the origin, and uploads copied aside for write-through. A read or upload that
    /// would go over streams through uncached instead.
    pub max_in_flight: u64,
}

/// How large objects and ranged reads are cached as fixed-size aligned blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPolicy {
    /// Size of a block (every block but an object's last).
    pub block_size: u64,
    /// Objects up to this size are cached as blocks (0: blocks are off); larger ones stream
    /// through uncached.
    pub max_object_size: u64,
    /// Contiguous missing blocks are read from the origin in one ranged GET of up to this
    /// many bytes.
    pub coalesce: u64,
    /// Ranged origin GETs (each of up to [`Self::coalesce`] bytes) one answer from blocks
    /// keeps in flight ahead of what it has sent (at least 1): S3 serves one object fastest
    /// over several connections at once.
    pub origin_parallelism: u64,
    /// Bytes that sequential read-ahead may have in flight, process-wide (0: no read-ahead).
    pub prefetch_budget: u64,
    /// Largest read-ahead window of one sequential reader.
    pub prefetch_max_window: u64,
    /// The longest a block is kept (`None`: until capacity evicts it). A block's key names
    /// the object's ETag, so its bytes are never stale and its lifetime is not the metadata's
    /// TTL: an expired entry is revalidated, and a 304 keeps every block. This bound only
    /// frees the blocks of versions nobody asks for any more (in Redis, where `allkeys-lru`
    /// is not a given).
    pub ttl: Option<Duration>,
}

/// Ranged origin GETs one answer from blocks keeps in flight, by default (BENCHMARKS.md §5b).
pub const DEFAULT_ORIGIN_PARALLELISM: u64 = 8;

/// How long a block is kept at most, by default: a day.
pub const DEFAULT_BLOCK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for BlockPolicy {
    fn default() -> Self {
        Self {
            block_size: 1 << 20,
            max_object_size: 5 << 30,
            coalesce: 8 << 20,
            origin_parallelism: DEFAULT_ORIGIN_PARALLELISM,
            prefetch_budget: 64 << 20,
            prefetch_max_window: 16 << 20,
            ttl: Some(DEFAULT_BLOCK_TTL),
        }
    }
}

/// What happens when an entry's TTL runs out, and whether absences are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Keep expired entries for one more TTL and revalidate them with a conditional GET
    /// (`If-None-Match`): a 304 renews the entry without moving its bytes.
    pub revalidate: bool,
    /// For this long after expiry, answer with the stale entry at once while one background
    /// revalidation runs. Zero: off.
    pub stale_while_revalidate: Duration,
    /// For this long after expiry, answer with the stale entry when the origin fails (5xx,
    /// timeout). Zero: off.
    pub stale_if_error: Duration,
    /// Cache the origin's NoSuchKey for this long. `None`: off.
    pub negative_ttl: Option<Duration>,
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            revalidate: true,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            negative_ttl: None,
        }
    }
}

/// A lifetime for the objects under one bucket prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlRule {
    /// Bucket.
    pub bucket: String,
    /// Key prefix (may be empty: the whole bucket).
    pub prefix: String,
    /// Lifetime; `None` pins the entries.
    pub ttl: Option<Duration>,
}

/// A `--ttl-rule` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid TTL rule {0:?}: expected BUCKET/PREFIX=DURATION with a positive duration, e.g. media/thumbs/=300s, \
     media/=1h30m or media/=none"
)]
pub struct TtlRuleError(pub String);

impl std::str::FromStr for TtlRule {
    type Err = TtlRuleError;

    /// `bucket/prefix=300s`, `bucket=1h30m`, `bucket/pinned/=none`. Durations are
    /// [`humantime`]'s (`500ms`, `30s`, `5m`, `1h30m`, `2d`, …) and must be positive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TtlRuleError(s.to_owned());
        let (path, ttl) = s.rsplit_once('=').ok_or_else(err)?;
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        crate::model::key::validate_bucket(bucket).map_err(|_| err())?;
        let ttl = ttl.trim();
        let ttl = if ttl.eq_ignore_ascii_case("none") {
            None
        } else {
            let d = humantime::parse_duration(ttl).map_err(|_| err())?;
            if d.is_zero() {
                return Err(err());
            }
            Some(d)
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            ttl,
        })
    }
}

impl CachePolicy {
    /// True when some entries are stored without a TTL.
    #[must_use]
    pub fn pins_anything(&self) -> bool {
        self.ttl.is_none() || self.ttl_rules.iter().any(|r| r.ttl.is_none())
    }

    /// True when some entries carry a TTL.
    #[must_use]
    pub fn expires_anything(&self) -> bool {
        self.ttl.is_some() || self.ttl_rules.iter().any(|r| r.ttl.is_some())
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            max_object_size: 8 << 20,
            ttl: Some(Duration::from_secs(300)),
            ttl_rules: Vec::new(),
            freshness: Freshness::default(),
            blocks: BlockPolicy::default(),
            max_in_flight: 256 << 20,
        }
    }
}

/// Event notifications (webhook, SQS) and warm-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsConfig {
    /// Polls this queue.
    pub sqs: Option<SqsConfig>,
    /// What created objects are hydrated.
    pub apply: ApplyConfig,
    /// Prefixes loaded at start-up.
    pub warm: Vec<HydrationRule>,
    /// Objects loaded at once during warm-up.
    pub warm_concurrency: usize,
}

/// Which tiers hold entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierConfig {
    /// In-process memory only (no other server needed).
    Memory,
    /// Redis/Valkey only, shared by every process that uses it.
    Redis(RedisConfig),
    /// Memory (L1) over Redis (L2), kept coherent across processes by the invalidation bus.
    MemoryRedis(RedisConfig, BusConfig),
}

/// Default capacity of the memory tier's block cache.
pub const DEFAULT_BLOCK_CAPACITY: u64 = 512 << 20;

/// Memory tier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Capacity in weighted bytes.
    pub capacity: u64,
    /// Capacity of the block cache (large objects and ranged reads), in bytes.
    pub block_capacity: u64,
    /// Eviction policy.
    pub eviction: EvictionPolicy,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            capacity: 256 << 20,
            block_capacity: DEFAULT_BLOCK_CAPACITY,
            eviction: EvictionPolicy::Lru,
        }
    }
}

/// How clients authenticate to s3cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAuth {
    /// Key pairs with full access (SigV4 headers, presigned URLs, streaming uploads).
    pub credentials: Vec<Credentials>,
    /// Unsigned requests may read and list everything (public read).
    pub allow_anonymous: bool,
    /// Identities with their own rules (TOML, see [`crate::model::identities`]); reloaded on SIGHUP
    /// and when it changes.
    pub identities_file: Option<PathBuf>,
    /// An event sender whose events may touch every object: `POST /events` on the admin
    /// listener accepts requests bearing this token (the file can name more senders).
    pub webhook_token: Option<String>,
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// S3 listener.
    pub listen: SocketAddr,
    /// HTTPS on the S3 listener; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Listener for `/metrics` and `/health`; `None` disables it.
    pub admin_listen: Option<SocketAddr>,
    /// Base domains for virtual-hosted-style requests (`bucket.<domain>`).
    pub domains: Vec<String>,
    /// The origin.
    pub origin: OriginConfig,
    /// Client authentication.
    pub auth: ClientAuth,
    /// Memory tier (used by `Memory` and `MemoryRedis`).
    pub memory: MemoryConfig,
    /// Which tiers.
    pub tier: TierConfig,
    /// Event notifications and warm-up.
    pub events: EventsConfig,
    /// Caching rules.
    pub policy: CachePolicy,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Answer plain GET/HEAD hits (memory, and Redis) before the full S3 request handling
    /// ([`crate::doors::hot_path`]); off, every request takes the full path.
    pub hot_path: bool,
    /// How long the hot path's connection loop answers hits without a pause before it gives
    /// its CPU core to whatever else waits for it ([`crate::doors::hot_path::cpu_turn`]); `None`:
    /// it keeps the core until the kernel takes it.
    pub yield_after: Option<Duration>,
}

/// The certificate and key of the S3 listener's HTTPS (PEM files). Both files are read again
/// when they change, so a renewed certificate needs no restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key: PathBuf,
    /// How often the files are checked for a change.
    pub reload_interval: Duration,
}

impl TlsConfig {
    /// `cert` and `key`, checked for changes every second.
    #[must_use]
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            cert,
            key,
            reload_interval: Duration::from_secs(1),
        }
    }
}

/// Objects to load into the cache when they are created at the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HydrationRule {
    /// Bucket.
    pub bucket: String,
    /// Key prefix (empty: the whole bucket).
    pub prefix: String,
}

/// A hydration rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hydration rule {0:?}: expected BUCKET or BUCKET/PREFIX")]
pub struct RuleError(pub String);

impl std::str::FromStr for HydrationRule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("s3://").unwrap_or(s);
        let (bucket, prefix) = s.split_once('/').unwrap_or((s, ""));
        crate::model::key::validate_bucket(bucket).map_err(|_| RuleError(s.to_owned()))?;
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// What the applier does with created objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyConfig {
    /// Which created objects are loaded into the cache (the others are invalidated).
    pub hydrate: Vec<HydrationRule>,
    /// Largest object hydrated.
    pub hydrate_max_size: u64,
}

/// Where and how to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConfig {
    /// Queue URL.
    pub queue_url: String,
    /// SQS endpoint (for SQS-compatible servers); `None` for AWS.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Credentials; `None` uses the AWS default chain.
    pub credentials: Option<Credentials>,
    /// Long-poll wait per receive (at most 20 s).
    pub wait: Duration,
    /// Receives after which a failing message is dropped as poison.
    pub max_receives: u32,
}

/// Which Redis to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (or a primary with replicas behind one endpoint): `redis://` or `rediss://`
    /// URL, with optional `user:password@`.
    Standalone {
        /// The URL.
        url: String,
    },
    /// Cluster mode: seed nodes as URLs or `host:port`.
    Cluster {
        /// Seed nodes.
        nodes: Vec<String>,
        /// Send reads to replicas.
        read_from_replicas: bool,
    },
}

/// Redis tier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Where.
    pub target: RedisTarget,
    /// Bound on every Redis call; past it, the request is answered from the origin.
    pub timeout: Duration,
    /// Largest object stored in Redis.
    pub inline_limit: u64,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
    /// Multiplexed connections the tier spreads its calls over (per cluster node in cluster
    /// mode); at least one.
    pub connections: usize,
}

/// The default of [`RedisConfig::connections`]: of 1, 2, 4 and 8, one connection gave the best
/// hit rate on a 2-core machine (BENCHMARKS.md).
pub const DEFAULT_REDIS_CONNECTIONS: usize = 1;

impl RedisTarget {
    /// The seed URLs, normalised to `redis://` URLs.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        let norm = |s: &String| {
            if s.contains("://") {
                s.clone()
            } else {
                format!("redis://{s}")
            }
        };
        match self {
            Self::Standalone { url } => vec![norm(url)],
            Self::Cluster { nodes, .. } => nodes.iter().map(norm).collect(),
        }
    }
}

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// First cool-down.
    pub cooldown: Duration,
    /// Longest cool-down.
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 3,
            cooldown: Duration::from_millis(500),
            max_cooldown: Duration::from_secs(15),
        }
    }
}

/// Bus timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusConfig {
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// How long a write waits for peers' acknowledgements.
    pub ack_timeout: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(500),
            ack_timeout: Duration::from_millis(500),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rules_parse() {
        let r: TtlRule = "media/thumbs/=300s".parse().unwrap();
        assert_eq!(
            (r.bucket.as_str(), r.prefix.as_str(), r.ttl),
            ("media", "thumbs/", Some(Duration::from_secs(300)))
        );
        let r: TtlRule = "media=none".parse().unwrap();
        assert_eq!((r.prefix.as_str(), r.ttl), ("", None));
        let r: TtlRule = "media/a=b/=2h".parse().unwrap();
        assert_eq!((r.prefix.as_str(), r.ttl), ("a=b/", Some(Duration::from_secs(7200))));
        let r: TtlRule = "bkt/=1h30m".parse().unwrap();
        assert_eq!(
            (r.bucket.as_str(), r.prefix.as_str(), r.ttl),
            ("bkt", "", Some(Duration::from_secs(5400)))
        );
        let r: TtlRule = "media/a/=250ms".parse().unwrap();
        assert_eq!(r.ttl, Some(Duration::from_millis(250)));
        let r: TtlRule = "media/=2d".parse().unwrap();
        assert_eq!(r.ttl, Some(Duration::from_secs(2 * 86_400)));
        let r: TtlRule = "media/=NONE".parse().unwrap();
        assert_eq!(r.ttl, None);
        for bad in [
            "media",
            "media/x=",
            "media/x=soon",
            "Bad/x=1s",
            "media/x=0s",
            "media/x=0ms",
            "/x=1s",
            "media/x=5",
        ] {
            assert!(bad.parse::<TtlRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hydration_rules_parse() {
        let r: HydrationRule = "s3://media/thumbs/".parse().unwrap();
        assert_eq!((r.bucket.as_str(), r.prefix.as_str()), ("media", "thumbs/"));
        let r: HydrationRule = "media".parse().unwrap();
        assert_eq!(r.prefix, "");
        assert!("Media/x".parse::<HydrationRule>().is_err());
    }
}
