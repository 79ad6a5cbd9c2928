//! The validated form of `s3cached bench`'s flags: every size, duration and list parsed and
//! range-checked once, before anything starts.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use s3cached::model::size::ByteSize;

use crate::BenchArgs;

/// Largest object count of a classic run.
const MAX_OBJECTS: u64 = 100_000;
/// Largest object size a run uploads.
const MAX_SIZE: u64 = 1 << 30;
/// Largest number of client connections in one step.
const MAX_CONCURRENCY: usize = 4096;
/// Object count bounds per load-mode size.
pub const MIN_KEYS: u64 = 16;
/// Upper bound of the object count per load-mode size (upload time stays reasonable).
pub const MAX_KEYS: u64 = 8192;
/// Longest step.
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A flag value that cannot be used; shown as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

fn err(msg: impl Into<String>) -> PlanError {
    PlanError(msg.into())
}

/// A cache tier configuration to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The in-process memory tier.
    Memory,
    /// The Redis tier alone (`--redis-url`).
    Redis,
    /// Memory over Redis.
    MemoryRedis,
}

impl Tier {
    /// Name used in tables, JSON and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Redis => "redis",
            Tier::MemoryRedis => "memory+redis",
        }
    }
}

/// How the cache's memory capacity is chosen in load mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Capacity {
    /// A fixed size.
    Bytes(u64),
    /// A share (0 < f) of each size's weighted working set.
    Fraction(f64),
}

/// Key popularity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Popularity {
    /// Every key equally likely.
    Uniform,
    /// Zipf with exponent s: key of rank k has weight 1 / k^s.
    Zipf(f64),
}

/// Classic-mode settings.
#[derive(Debug, Clone)]
pub struct Classic {
    /// Objects, and GETs per series.
    pub objects: u64,
    /// Object size.
    pub size: u64,
}

/// Load-mode settings.
#[derive(Debug, Clone)]
pub struct Load {
    /// Object sizes, in order.
    pub sizes: Vec<u64>,
    /// Connection counts, in order.
    pub concurrency: Vec<usize>,
    /// Measured time per step.
    pub duration: Duration,
    /// Unmeasured warm-up per size.
    pub warmup: Duration,
    /// Working-set bytes per size.
    pub working_set: u64,
    /// Embedded cache capacity.
    pub capacity: Capacity,
    /// Key popularity.
    pub popularity: Popularity,
    /// Also sweep the origin directly.
    pub origin_baseline: bool,
}

impl Load {
    /// Objects used for `size`: working set / size, clamped to [`MIN_KEYS`]..=[`MAX_KEYS`].
    pub fn keys_for(&self, size: u64) -> u64 {
        (self.working_set / size.max(1)).clamp(MIN_KEYS, MAX_KEYS)
    }
}

/// The mode and its settings.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Sequential GETs, origin then cache.
    Classic(Classic),
    /// Sweeps under concurrency.
    Load(Load),
}

impl Mode {
    /// `classic` or `load`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Classic(_) => "classic",
            Mode::Load(_) => "load",
        }
    }
}

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// Access key id.
    pub access: String,
    /// Secret key.
    pub secret: String,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({}, <redacted>)", self.access)
    }
}

/// Running servers to use instead of embedded ones.
#[derive(Debug, Clone)]
pub struct External {
    /// Origin URL and its credentials.
    pub origin: Option<(String, Keys)>,
    /// Cache URL, its credentials and its metrics URL.
    pub cache: Option<(String, Keys, Option<String>)>,
}

/// Delay the relay adds to origin responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Fixed part.
    pub base: Duration,
    /// Uniform extra in ±jitter.
    pub jitter: Duration,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Mode and its settings.
    pub mode: Mode,
    /// Tiers compared (embedded cache only).
    pub tiers: Vec<Tier>,
    /// Origin latency emulation, when asked for.
    pub latency: Option<Latency>,
    /// Running servers, when given.
    pub external: External,
    /// Region signed for.
    pub region: String,
    /// Bucket of the benchmark's objects.
    pub bucket: String,
    /// JSON output path.
    pub json: PathBuf,
    /// SVG output path.
    pub svg: PathBuf,
    /// Seed for key choice.
    pub seed: u64,
    /// Log filter for the embedded servers.
    pub server_log: String,
    /// Scratch Redis for the Redis-backed tiers.
    pub redis_url: Option<String>,
}

fn size(flag: &str, s: &str) -> Result<u64, PlanError> {
    let v = s
        .parse::<ByteSize>()
        .map_err(|e| err(format!("--{flag}: {e}")))?
        .bytes();
    if v == 0 || v > MAX_SIZE {
        return Err(err(format!(
            "--{flag} {s:?}: must be between 1B and {}",
            ByteSize(MAX_SIZE)
        )));
    }
    Ok(v)
}

fn duration(flag: &str, s: &str, allow_zero: bool) -> Result<Duration, PlanError> {
    let d: Duration = s
        .trim()
        .parse::<humantime::Duration>()
        .map_err(|e| err(format!("--{flag} {s:?}: {e} (expected a duration like 500ms, 3s, 1m)")))?
        .into();
    if (!allow_zero && d.is_zero()) || d > MAX_DURATION {
        return Err(err(format!(
            "--{flag} {s:?}: must be {} and at most 1h",
            if allow_zero { "at least 0s" } else { "positive" }
        )));
    }
    Ok(d)
}

fn endpoint(flag: &str, url: &str) -> Result<String, PlanError> {
    let u: http::Uri = url.parse().map_err(|_| err(format!("--{flag} {url:?}: not a URL")))?;
    if u.scheme_str() != Some("http") || u.authority().is_none() {
        return Err(err(format!(
            "--{flag} {url:?}: expected http://HOST:PORT (the bench client speaks plain HTTP)"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn env_keys() -> Option<Keys> {
    let get = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    Some(Keys {
        access: get("AWS_ACCESS_KEY_ID")?,
        secret: get("AWS_SECRET_ACCESS_KEY")?,
    })
}

impl Plan {
    /// Checks every flag.
    ///
    /// # Errors
    /// A [`PlanError`] naming the first flag that cannot be used.
    pub fn from_args(a: &BenchArgs) -> Result<Self, PlanError> {
        let mode = match a.mode.trim().to_ascii_lowercase().as_str() {
            "classic" => {
                let objects: u64 = a
                    .objects
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("--objects {:?}: expected a whole number", a.objects)))?;
                if objects == 0 || objects > MAX_OBJECTS {
                    return Err(err(format!("--objects {objects}: must be between 1 and {MAX_OBJECTS}")));
                }
                Mode::Classic(Classic {
                    objects,
                    size: size("size", &a.size)?,
                })
            }
            "load" => Mode::Load(Self::load(a)?),
            other => {
                return Err(err(format!("--mode {other:?}: expected `classic` or `load`")));
            }
        };
        let mut tiers = Vec::new();
        for t in a.tiers.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let tier = match t.to_ascii_lowercase().as_str() {
                "memory" => Tier::Memory,
                "redis" | "memory+redis" if a.redis_url.is_none() => {
                    return Err(err(format!("--tiers {t:?} needs --redis-url (a scratch Redis)")));
                }
                "redis" => Tier::Redis,
                "memory+redis" => Tier::MemoryRedis,
                _ => {
                    return Err(err(format!(
                        "--tiers {t:?}: unknown tier (expected memory, redis, memory+redis)"
                    )));
                }
            };
            if !tiers.contains(&tier) {
                tiers.push(tier);
            }
        }
        if tiers.is_empty() {
            return Err(err("--tiers: name at least one tier"));
        }
        let latency = match (&a.origin_latency, &a.origin_jitter) {
            (None, None) => None,
            (None, Some(_)) => return Err(err("--origin-jitter needs --origin-latency")),
            (Some(l), j) => {
                let base = duration("origin-latency", l, true)?;
                let jitter = match j {
                    Some(j) => duration("origin-jitter", j, true)?,
                    None => Duration::ZERO,
                };
                if jitter > base {
                    return Err(err(format!(
                        "--origin-jitter {jitter:?} is larger than --origin-latency {base:?}"
                    )));
                }
                Some(Latency { base, jitter })
            }
        };
        let origin = match &a.origin_endpoint {
            Some(url) => {
                let url = endpoint("origin-endpoint", url)?;
                let keys = env_keys()
                    .ok_or_else(|| err("--origin-endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))?;
                Some((url, keys))
            }
            None => None,
        };
        let cache = match &a.cache_endpoint {
            Some(url) => {
                let url = endpoint("cache-endpoint", url)?;
                if origin.is_none() {
                    return Err(err(
                        "--cache-endpoint needs --origin-endpoint (the origin the cache fronts)",
                    ));
                }
                if latency.is_some() {
                    return Err(err(
                        "--origin-latency needs the embedded cache: the relay must sit between \
                         s3cached and the origin",
                    ));
                }
                let keys = match (&a.cache_access_key, &a.cache_secret_key) {
                    (Some(access), Some(secret)) => Keys {
                        access: access.clone(),
                        secret: secret.clone(),
                    },
                    _ => env_keys().ok_or_else(|| {
                        err("--cache-endpoint needs --cache-access-key/--cache-secret-key or \
                             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
                    })?,
                };
                let metrics = match &a.cache_metrics {
                    Some(m) => Some(endpoint("cache-metrics", m)?),
                    None => None,
                };
                Some((url, keys, metrics))
            }
            None => {
                if a.cache_metrics.is_some() {
                    return Err(err("--cache-metrics needs --cache-endpoint"));
                }
                None
            }
        };
        s3cached::model::key::validate_bucket(&a.bucket).map_err(|e| err(format!("--bucket: {e}")))?;
        let seed = a
            .seed
            .trim()
            .parse()
            .map_err(|_| err(format!("--seed {:?}: expected a whole number", a.seed)))?;
        if a.json.trim().is_empty() || a.svg.trim().is_empty() {
            return Err(err("--json and --svg need a file name"));
        }
        if tracing_subscriber::EnvFilter::try_new(&a.server_log).is_err() {
            return Err(err(format!("--server-log {:?}: not a log filter", a.server_log)));
        }
        Ok(Plan {
            mode,
            tiers,
            latency,
            external: External { origin, cache },
            region: a.region.clone(),
            bucket: a.bucket.clone(),
            json: PathBuf::from(&a.json),
            svg: PathBuf::from(&a.svg),
            seed,
            server_log: a.server_log.clone(),
            redis_url: a.redis_url.clone(),
        })
    }

    fn load(a: &BenchArgs) -> Result<Load, PlanError> {
        let mut sizes = Vec::new();
        for s in a.sizes.split(',').filter(|s| !s.trim().is_empty()) {
            sizes.push(size("sizes", s)?);
        }
        if sizes.is_empty() {
            return Err(err("--sizes: name at least one size"));
        }
        let mut concurrency = Vec::new();
        for c in a.concurrency.split(',').filter(|s| !s.trim().is_empty()) {
            let n: usize = c
                .trim()
                .parse()
                .map_err(|_| err(format!("--concurrency {c:?}: expected whole numbers, e.g. 1,8,64")))?;
            if n == 0 || n > MAX_CONCURRENCY {
                return Err(err(format!(
                    "--concurrency {n}: must be between 1 and {MAX_CONCURRENCY}"
                )));
            }
            concurrency.push(n);
        }
        if concurrency.is_empty() {
            return Err(err("--concurrency: name at least one connection count"));
        }
        let working_set = size("working-set", &a.working_set)?;
        let cap = a.cache_capacity.trim();
        let capacity = if let Some(pct) = cap.strip_suffix('%') {
            let f: f64 = pct
                .trim()
                .parse()
                .map_err(|_| err(format!("--cache-capacity {cap:?}: expected a size or a percentage")))?;
            if !(f > 0.0 && f <= 1000.0) {
                return Err(err(format!(
                    "--cache-capacity {cap:?}: percentage must be in (0, 1000]"
                )));
            }
            Capacity::Fraction(f / 100.0)
        } else {
            Capacity::Bytes(size("cache-capacity", cap)?)
        };
        let z: f64 = a.zipf.trim().parse().map_err(|_| {
            err(format!(
                "--zipf {:?}: expected a number such as 1.1 (0 = uniform)",
                a.zipf
            ))
        })?;
        let popularity = if z == 0.0 {
            Popularity::Uniform
        } else if z.is_finite() && z > 0.0 && z <= 10.0 {
            Popularity::Zipf(z)
        } else {
            return Err(err(format!("--zipf {z}: must be 0 (uniform) or in (0, 10]")));
        };
        Ok(Load {
            sizes,
            concurrency,
            duration: duration("duration", &a.duration, false)?,
            warmup: duration("warmup", &a.warmup, true)?,
            working_set,
            capacity,
            popularity,
            origin_baseline: !a.no_origin_baseline,
        })
    }
}
