//! The process: builds origin, tier, engine and S3 service from a [`ServeConfig`], accepts
//! connections on the S3 listener (HTTPS when configured, see [`crate::doors::tls`]) and the admin
//! listener (`/metrics`, `/health`), and shuts down gracefully (in-flight requests finish
//! within the grace period).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::doors::auth::{Authorizer, RulesError, rules_of};
use crate::doors::front::Front;
use crate::doors::host::{InvalidDomain, VirtualHosts};
use crate::doors::hot_path::service::HotPathService;
use crate::doors::hot_path::{HotPath, connection};
use crate::doors::origin_grants::OriginGrants;
use crate::doors::pass_through::PassThrough;
use crate::doors::tls::{Tls, TlsError};
use crate::engine::Engine;
use crate::engine::freshness::FreshnessRules;
use crate::metrics::Metrics;
use crate::model::config::{CachePolicy, ClientAuth, EventsConfig, OriginConfig, ServeConfig, TierConfig};
use crate::origin::{Origin, OriginError};
use crate::process::admin::Admin;
use crate::process::events::apply::Applier;
use crate::tier::bus::Bus;
use crate::tier::memory::MemoryTier;
use crate::tier::redis::RedisTier;
use crate::tier::tiered::Tiered;
use crate::tier::write_guard::WriteGuard;
use crate::tier::{CacheTier, Lifetimes};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The origin could not be set up.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// A virtual-host domain is not a valid host name.
    #[error(transparent)]
    Domain(#[from] InvalidDomain),
    /// The identities file cannot be loaded.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Neither client credentials nor anonymous access were configured.
    #[error("no client credentials configured and anonymous access is off: nobody could use this endpoint")]
    NoClientAuth,
}

/// A bound, ready-to-run s3cached.
pub struct Server {
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    admin: Option<TcpListener>,
    service: HotPathService,
    engine: Arc<Engine>,
    authorizer: Arc<Authorizer>,
    auth: ClientAuth,
    admin_state: Arc<Admin>,
    events: EventsConfig,
    grace: std::time::Duration,
}

impl Server {
    /// Sets everything up and binds the listeners (port 0 picks a free port).
    ///
    /// # Errors
    /// [`ServeError`] when the configuration is unusable or a port cannot be bound.
    pub async fn bind(config: ServeConfig) -> Result<Self, ServeError> {
        let auth = &config.auth;
        if auth.credentials.is_empty() && !auth.allow_anonymous && auth.identities_file.is_none() {
            return Err(ServeError::NoClientAuth);
        }
        let rules = rules_of(auth)?;
        // Before anything connects anywhere: a bad certificate is a configuration error.
        let tls = config.tls.as_ref().map(Tls::load).transpose()?;
        let engine = build_engine(&config).await?;
        let authorizer = Arc::new(
            Authorizer::new(rules, Some(Arc::clone(engine.metrics())))
                .with_origin_grants(OriginGrants::new(engine.origin().clone())),
        );
        let full = build_service(
            &authorizer,
            &config.domains,
            Arc::clone(&engine),
            Front::new(Arc::clone(&engine), Arc::clone(&authorizer)),
        )?;
        let hot = if config.hot_path {
            Some(
                HotPath::new(
                    Arc::clone(&engine),
                    Arc::clone(&authorizer),
                    (!config.domains.is_empty())
                        .then(|| VirtualHosts::new(&config.domains))
                        .transpose()?,
                )
                .yielding_after(config.yield_after),
            )
        } else {
            None
        };
        let service = HotPathService::new(hot, full);
        let listener = bind(config.listen).await?;
        let admin = match config.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let applier = Applier::new(Arc::clone(&engine), config.events.apply.clone());
        let admin_state = Arc::new(Admin::new(
            Arc::clone(&engine),
            Arc::clone(&applier),
            Arc::clone(&authorizer),
        ));
        Ok(Self {
            listener,
            tls,
            admin,
            service,
            authorizer,
            auth: config.auth,
            engine,
            admin_state,
            events: config.events,
            grace: config.shutdown_grace,
        })
    }

    /// The S3 listener's address.
    ///
    /// # Errors
    /// The OS error when the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The admin listener's address, when enabled.
    #[must_use]
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The engine, for tests and embedding.
    #[must_use]
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (bounded by
    /// the grace period).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        if let Ok(addr) = self.listener.local_addr() {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            info!(%addr, scheme, origin = self.engine.origin().description(), tier = self.engine.tier().name(), "s3cached listening");
        }
        let admin_task = self.admin.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "admin endpoints /metrics and /health listening");
            }
            let admin = Arc::clone(&self.admin_state);
            tokio::spawn(accept_loop(
                listener,
                None,
                None,
                stop_rx.clone(),
                Arc::clone(&graceful),
                move || {
                    let admin = Arc::clone(&admin);
                    service_fn(move |req| {
                        let admin = Arc::clone(&admin);
                        async move { Ok::<_, Infallible>(admin.respond(req).await) }
                    })
                },
            ))
        });
        let sqs_task = self.events.sqs.clone().map(|sqs| {
            crate::process::events::sqs::spawn(self.admin_state.applier(), sqs, Arc::clone(self.engine.metrics()))
        });
        let warm_task = (!self.events.warm.is_empty()).then(|| {
            let (engine, rules, concurrency) = (
                Arc::clone(&self.engine),
                self.events.warm.clone(),
                self.events.warm_concurrency,
            );
            tokio::spawn(async move {
                for rule in rules {
                    match crate::process::warm::warm(&engine, &rule, concurrency, |_| {}).await {
                        Ok(summary) => info!(bucket = %rule.bucket, prefix = %rule.prefix, ?summary, "warm-up done"),
                        Err(e) => warn!(bucket = %rule.bucket, prefix = %rule.prefix, error = %e, "warm-up failed"),
                    }
                }
            })
        });
        let identities_task = self
            .auth
            .identities_file
            .is_some()
            .then(|| tokio::spawn(reload_identities(Arc::clone(&self.authorizer), self.auth.clone())));
        let tls_task = self.tls.as_ref().map(Tls::spawn_reloader);
        let service = self.service.clone();
        let hot = self.service.hot().cloned();
        let s3_task = tokio::spawn(accept_loop(
            self.listener,
            self.tls,
            hot,
            stop_rx,
            Arc::clone(&graceful),
            move || service.clone(),
        ));
        shutdown.await;
        info!("shutting down: no new connections, waiting for in-flight requests");
        for task in [sqs_task, warm_task, identities_task, tls_task].into_iter().flatten() {
            task.abort();
        }
        let _ = stop_tx.send(true);
        let _ = s3_task.await;
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        match Arc::try_unwrap(graceful) {
            Ok(graceful) => {
                if tokio::time::timeout(self.grace, graceful.shutdown()).await.is_err() {
                    warn!(grace = ?self.grace, "in-flight requests still running after the grace period; closing them");
                }
            }
            Err(_) => error!("connection tracker still shared at shutdown"),
        }
        info!("s3cached stopped");
    }
}

/// Reloads the identities file on SIGHUP and when it changes (checked every second). A file
/// that does not load is reported and the rules in force stay.
async fn reload_identities(authorizer: Arc<Authorizer>, auth: ClientAuth) {
    let Some(path) = auth.identities_file.clone() else {
        return;
    };
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP; the identities file is still reloaded when it changes");
            None
        }
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let signalled = match hangup.as_mut() {
            Some(h) => tokio::select! {
                _ = h.recv() => true,
                _ = tick.tick() => false,
            },
            None => {
                tick.tick().await;
                false
            }
        };
        let now = modified(&path);
        if !signalled && now == seen {
            continue;
        }
        seen = now;
        match rules_of(&auth) {
            Ok(rules) => {
                let count = rules.identities.len();
                authorizer.reload(rules);
                info!(file = %path.display(), identities = count, "identities reloaded");
            }
            Err(e) => error!(error = %e, "identities file not reloaded; the previous rules stay in force"),
        }
    }
}

/// Builds the origin, the tiers and the engine of `config` (no listener).
///
/// # Errors
/// [`ServeError::Origin`] when the origin cannot be set up.
pub async fn build_engine(config: &ServeConfig) -> Result<Arc<Engine>, ServeError> {
    let metrics = Arc::new(Metrics::new());
    let origin = Origin::connect(&config.origin, Arc::clone(&metrics)).await?;
    if let OriginConfig::LocalDir(dir) = &config.origin {
        warn!(
            dir = %dir.display(),
            "DEVELOPMENT MODE: no origin configured, serving a local directory as S3 \
             (set --origin-endpoint or AWS_ENDPOINT_URL / AWS_REGION to front real S3)"
        );
    }
    let guard = Arc::new(WriteGuard::new());
    let freshness = Arc::new(FreshnessRules::new(config.policy.clone()));
    let tier = build_tier(config, &guard, &freshness, &metrics).await;
    Ok(Engine::with_guard(origin, tier, metrics, freshness, guard))
}

/// Builds the configured tiers (connecting to Redis in the background when it is down).
async fn build_tier(
    config: &ServeConfig,
    guard: &Arc<WriteGuard>,
    freshness: &Arc<FreshnessRules>,
    metrics: &Arc<Metrics>,
) -> Arc<dyn CacheTier> {
    let memory = || {
        Arc::new(
            MemoryTier::new(
                config.memory.capacity,
                config.memory.eviction,
                Some(Arc::clone(metrics)),
            )
            .with_block_capacity(config.memory.block_capacity),
        )
    };
    match &config.tier {
        TierConfig::Memory => memory(),
        TierConfig::Redis(redis) => {
            let l2 = RedisTier::connect(redis.clone(), Arc::clone(metrics)).await;
            warn_about_eviction(&l2, &config.policy).await;
            l2
        }
        TierConfig::MemoryRedis(redis, bus) => {
            let l1 = memory();
            let l2 = RedisTier::connect(redis.clone(), Arc::clone(metrics)).await;
            warn_about_eviction(&l2, &config.policy).await;
            let bus = Bus::start(
                redis.target.urls(),
                *bus,
                Arc::clone(&l1),
                Arc::clone(guard),
                Arc::clone(metrics),
            );
            Arc::new(Tiered::new(
                l1,
                l2,
                bus,
                Arc::clone(guard),
                Arc::clone(metrics),
                Arc::clone(freshness) as Arc<dyn Lifetimes>,
            ))
        }
    }
}

/// Warns when Redis' eviction policy contradicts the TTL settings.
async fn warn_about_eviction(redis: &RedisTier, policy: &CachePolicy) {
    let Some(p) = redis.eviction_policy().await else {
        return;
    };
    if p.starts_with("volatile-") && !policy.expires_anything() {
        warn!(
            maxmemory_policy = %p,
            "Redis evicts only keys with a TTL, and every entry is pinned (--ttl none): a full Redis \
             will refuse new entries"
        );
    } else if p.starts_with("allkeys-") && policy.pins_anything() {
        warn!(
            maxmemory_policy = %p,
            "pinned entries (TTL none) are still evicted under allkeys-*; use volatile-lru to protect them"
        );
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A service hyper's connection builder can serve on a spawned connection.
trait ConnService<B>:
    hyper::service::Service<Request<Incoming>, Response = Response<B>, Future: Send + 'static, Error: Into<BoxError>>
    + Send
    + 'static
{
}

impl<S, B> ConnService<B> for S where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Send
        + 'static
{
}

/// A response body hyper's connection builder can write on a spawned connection.
trait ConnBody: hyper::body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> ConnBody for B where B: hyper::body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// Accepts connections until `stop`, serving each with a service from `make`; with `tls`,
/// after a handshake in the connection's own task (a slow client must not hold up accepts).
/// With `hot`, an HTTP/1.1 connection's first requests (plain or inside TLS) are the hot
/// path's own loop's ([`connection::answer_hits`]) until one is not a memory hit.
async fn accept_loop<S, B>(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    hot: Option<Arc<HotPath>>,
    mut stop: watch::Receiver<bool>,
    graceful: Arc<GracefulShutdown>,
    make: impl Fn() -> S,
) where
    S: ConnService<B>,
    B: ConnBody,
{
    let builder = Arc::new(ConnBuilder::new(TokioExecutor::new()));
    loop {
        let (socket, _) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = socket.set_nodelay(true);
        let service = make();
        // Taken now, so that shutdown also waits for a connection still in its handshake.
        let watcher = graceful.watcher();
        match (&tls, &hot) {
            (None, Some(hot)) => {
                let (hot, builder, mut stop) = (Arc::clone(hot), Arc::clone(&builder), stop.clone());
                tokio::spawn(async move { hot_first(socket, &hot, &mut stop, &builder, service, watcher).await });
            }
            (None, None) => {
                let builder = Arc::clone(&builder);
                tokio::spawn(async move { serve_with_hyper(socket, &builder, service, watcher).await });
            }
            (Some(tls), hot) => {
                let (tls, hot, builder, mut stop) = (Arc::clone(tls), hot.clone(), Arc::clone(&builder), stop.clone());
                tokio::spawn(async move {
                    let Some(stream) = tls.handshake(socket).await else {
                        return;
                    };
                    // HTTP/1.1 inside TLS goes through the hot path's loop first, as on plain
                    // TCP. HTTP/2 (ALPN `h2`) is hyper's: the auto builder tells it by the
                    // preface, and the hot path still answers its hits as a service.
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    match hot {
                        Some(hot) if !h2 => hot_first(stream, &hot, &mut stop, &builder, service, watcher).await,
                        _ => serve_with_hyper(stream, &builder, service, watcher).await,
                    }
                });
            }
        }
    }
}

/// Serves `io` with the hot path's loop until a request is not its own, then with hyper. The
/// watcher is held meanwhile, so a shutdown waits for an answer being written; the loop ends
/// at the shutdown.
async fn hot_first<I, S, B>(
    io: I,
    hot: &HotPath,
    stop: &mut watch::Receiver<bool>,
    builder: &ConnBuilder<TokioExecutor>,
    service: S,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService<B>,
    B: ConnBody,
{
    let Some(rest) = connection::answer_hits(io, hot, stop).await else {
        return;
    };
    serve_with_hyper(rest, builder, service, watcher).await;
}

/// Serves `io` with hyper (HTTP/1.1 or HTTP/2, told by the preface) until it closes; the
/// watcher lets a shutdown wait for it.
async fn serve_with_hyper<I, S, B>(io: I, builder: &ConnBuilder<TokioExecutor>, service: S, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService<B>,
    B: ConnBody,
{
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let _ = watcher.watch(conn).await;
}

/// The s3s service over `front`, with client authentication and virtual hosts.
pub(crate) fn build_service(
    authorizer: &Arc<Authorizer>,
    domains: &[String],
    engine: Arc<Engine>,
    front: Front,
) -> Result<S3Service, ServeError> {
    let mut builder = S3ServiceBuilder::new(front);
    // Always installed, even with no key pair (anonymous reads only): s3s asks the access
    // hook only when an authenticator is set.
    builder.set_auth(authorizer.s3s_auth());
    builder.set_access(authorizer.s3s_access());
    builder.set_route(PassThrough::new(
        Arc::clone(&engine),
        Arc::clone(authorizer),
        (!domains.is_empty()).then(|| VirtualHosts::new(domains)).transpose()?,
    ));
    if !domains.is_empty() {
        builder.set_host(VirtualHosts::new(domains)?);
    }
    Ok(builder.build())
}
