//! The tier conformance suite against real Redis servers: standalone Redis 7, standalone
//! Valkey, and a Redis Cluster of three primaries.

mod support;

use std::sync::Arc;
use std::time::Duration;

use s3cached::config::{BreakerConfig, RedisConfig, RedisTarget};
use s3cached::metrics::Metrics;
use s3cached::tier::redis::RedisTier;
use s3cached::tier::{CacheTier, conformance};
use support::redis::{Flavor, RedisCluster, RedisServer};

fn config(target: RedisTarget) -> RedisConfig {
    RedisConfig {
        target,
        timeout: Duration::from_millis(500),
        inline_limit: 1 << 20,
        breaker: BreakerConfig::default(),
        connections: 2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_redis() {
    let server = RedisServer::start();
    let tier = RedisTier::connect(
        config(RedisTarget::Standalone { url: server.url() }),
        Arc::new(Metrics::new()),
    )
    .await;
    conformance::run(tier.as_ref()).await;
    // The classic convention: the object's bytes at bucket:key.
    assert_eq!(server.cli(&["GET", "conformance:miss-then-hit"]).trim(), "hello");
    assert_eq!(tier.eviction_policy().await.as_deref(), Some("noeviction"));
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_redis_with_a_password_and_a_database() {
    let server = RedisServer::start();
    // Set after the start, whose readiness check speaks without a password.
    assert_eq!(server.cli(&["CONFIG", "SET", "requirepass", "s3cret"]).trim(), "OK");
    let url = format!("redis://:s3cret@{}/2", server.addr());
    let tier = RedisTier::connect(config(RedisTarget::Standalone { url }), Arc::new(Metrics::new())).await;
    conformance::run(tier.as_ref()).await;
    let get = [
        "-a",
        "s3cret",
        "--no-auth-warning",
        "-n",
        "2",
        "GET",
        "conformance:miss-then-hit",
    ];
    assert_eq!(server.cli(&get).trim(), "hello");
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_valkey() {
    let server = RedisServer::start_with(Flavor::Valkey, &[]);
    let tier = RedisTier::connect(
        config(RedisTarget::Standalone { url: server.url() }),
        Arc::new(Metrics::new()),
    )
    .await;
    conformance::run(tier.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_of_three() {
    let cluster = RedisCluster::start(3, 0);
    let tier = RedisTier::connect(
        config(RedisTarget::Cluster {
            nodes: cluster.seeds(),
            read_from_replicas: false,
        }),
        Arc::new(Metrics::new()),
    )
    .await;
    conformance::run(tier.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_above_the_inline_limit_stay_out_of_redis() {
    let server = RedisServer::start();
    let mut cfg = config(RedisTarget::Standalone { url: server.url() });
    cfg.inline_limit = 1024;
    let tier = RedisTier::connect(cfg, Arc::new(Metrics::new())).await;
    let key = s3cached::model::key::CacheKey::new("bkt", "big").unwrap();
    let token = tier.get(&key).await.unwrap().token;
    let entry = Arc::new(s3cached::model::entry::Entry::new(
        s3cached::model::entry::ObjectMeta {
            size: 4096,
            ..Default::default()
        },
        bytes::Bytes::from(vec![1u8; 4096]),
    ));
    tier.insert(key.clone(), entry, None, token).await.unwrap();
    assert!(tier.get(&key).await.unwrap().entry.is_none());
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_redis_fails_fast_and_recovers() {
    let mut server = RedisServer::start();
    let mut cfg = config(RedisTarget::Standalone { url: server.url() });
    cfg.timeout = Duration::from_millis(100);
    cfg.breaker = BreakerConfig {
        threshold: 2,
        cooldown: Duration::from_millis(100),
        max_cooldown: Duration::from_millis(400),
    };
    let metrics = Arc::new(Metrics::new());
    let tier = RedisTier::connect(cfg, Arc::clone(&metrics)).await;
    let key = s3cached::model::key::CacheKey::new("bkt", "k").unwrap();
    assert!(tier.get(&key).await.is_ok());
    server.kill();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert!(tier.get(&key).await.is_err());
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "calls to a dead Redis must fail fast"
    );
    assert!(!matches!(tier.health(), s3cached::tier::TierHealth::Healthy));
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while tier.get(&key).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "tier did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics
            .encode()
            .contains("s3cached_cache_tier_bypasses_total{tier=\"redis\"}")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_over_redis() {
    use s3cached::config::BusConfig;
    use s3cached::engine::freshness::FreshnessRules;
    use s3cached::tier::bus::Bus;
    use s3cached::tier::memory::MemoryTier;
    use s3cached::tier::tiered::Tiered;
    use s3cached::tier::write_guard::WriteGuard;

    let server = RedisServer::start();
    let metrics = Arc::new(Metrics::new());
    let cfg = config(RedisTarget::Standalone { url: server.url() });
    let l2 = RedisTier::connect(cfg.clone(), Arc::clone(&metrics)).await;
    let l1 = Arc::new(MemoryTier::new(64 << 20, s3cached::config::EvictionPolicy::Lru, None));
    let guard = Arc::new(WriteGuard::new());
    let bus_cfg = BusConfig {
        heartbeat: Duration::from_millis(100),
        ack_timeout: Duration::from_millis(500),
    };
    let bus = Bus::start(
        cfg.target.urls(),
        bus_cfg,
        Arc::clone(&l1),
        Arc::clone(&guard),
        Arc::clone(&metrics),
    );
    let policy = s3cached::config::CachePolicy {
        ttl: None,
        ..Default::default()
    };
    let tier = Tiered::new(
        l1,
        l2,
        Arc::clone(&bus) as _,
        guard,
        metrics,
        Arc::new(FreshnessRules::new(policy)),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !bus.is_coherent() {
        assert!(std::time::Instant::now() < deadline, "bus never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conformance::run(&tier).await;
}
