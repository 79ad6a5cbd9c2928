//! Plain configuration structs for the library. The binary fills them from flags and
//! environment variables; nothing here depends on a command-line parser.

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
    },
    /// Development mode: a local directory served as S3 (one sub-directory per bucket).
    LocalDir(PathBuf),
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
    /// Lifetime of an entry; `None` keeps entries until evicted or invalidated.
    pub ttl: Option<Duration>,
}

impl CachePolicy {
    /// The lifetime of an entry for `key`.
    #[must_use]
    pub fn ttl_for(&self, _key: &crate::key::CacheKey) -> Option<Duration> {
        self.ttl
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            max_object_size: 8 << 20,
            ttl: Some(Duration::from_secs(300)),
        }
    }
}

/// Memory tier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Capacity in weighted bytes.
    pub capacity: u64,
    /// Eviction policy.
    pub eviction: EvictionPolicy,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            capacity: 256 << 20,
            eviction: EvictionPolicy::Lru,
        }
    }
}

/// How clients authenticate to s3cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAuth {
    /// Key pairs clients may sign with (SigV4 headers, presigned URLs, streaming uploads).
    pub credentials: Vec<Credentials>,
    /// Accept unsigned requests too.
    pub allow_anonymous: bool,
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// S3 listener.
    pub listen: SocketAddr,
    /// Listener for `/metrics` and `/health`; `None` disables it.
    pub admin_listen: Option<SocketAddr>,
    /// Base domains for virtual-hosted-style requests (`bucket.<domain>`).
    pub domains: Vec<String>,
    /// The origin.
    pub origin: OriginConfig,
    /// Client authentication.
    pub auth: ClientAuth,
    /// Memory tier.
    pub memory: MemoryConfig,
    /// Caching rules.
    pub policy: CachePolicy,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
}
