//! The authorization matrix against a real origin: every identity kind (full, read-only,
//! prefix-scoped, anonymous) against every operation class, on the hot path (a cached object)
//! and the full path (uncached). A cell fails when it grants more, or less, than the rules; a
//! refused write must also have left the origin unchanged.

mod support;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use support::clients::{http_get, put_bytes, s3_client};
use support::proxy::S3Cached;
use support::seaweed;
use support::util::error_chain;

const IDENTITIES: &str = r#"
[[identity]]
access-key = "reader"
secret-key = "reader-secret"
allow = [{ actions = ["read", "list"], on = ["BUCKET"] }]

[[identity]]
access-key = "team"
secret-env = "TEAM_SECRET"
allow = [{ actions = ["read", "list", "write"], on = ["BUCKET/team/"] }]

[anonymous]
allow = [{ actions = ["read"], on = ["BUCKET/public/"] }]
"#;

/// Ok, or the S3 error code.
type Outcome = Result<(), String>;

fn code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    e.as_service_error()
        .and_then(|s| s.code().map(str::to_owned))
        .unwrap_or_else(|| error_chain(e))
}

struct Ops<'a> {
    c: &'a aws_sdk_s3::Client,
    bucket: &'a str,
}

impl Ops<'_> {
    async fn get(&self, key: &str) -> Outcome {
        let r = self.c.get_object().bucket(self.bucket).key(key).send().await;
        r.map(|_| ()).map_err(|e| code(&e))
    }
    async fn head(&self, key: &str) -> Outcome {
        let r = self.c.head_object().bucket(self.bucket).key(key).send().await;
        // HEAD errors have no body: the status tells.
        r.map(|_| ()).map_err(|e| {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if status == Some(403) {
                "AccessDenied".to_owned()
            } else {
                code(&e)
            }
        })
    }
    async fn put(&self, key: &str) -> Outcome {
        let r = self
            .c
            .put_object()
            .bucket(self.bucket)
            .key(key)
            .body(ByteStream::from_static(b"new"))
            .send()
            .await;
        r.map(|_| ()).map_err(|e| code(&e))
    }
    async fn delete(&self, key: &str) -> Outcome {
        let r = self.c.delete_object().bucket(self.bucket).key(key).send().await;
        r.map(|_| ()).map_err(|e| code(&e))
    }
    async fn list(&self, prefix: &str) -> Outcome {
        let r = self.c.list_objects_v2().bucket(self.bucket).prefix(prefix).send().await;
        r.map(|_| ()).map_err(|e| code(&e))
    }
    async fn delete_many(&self, keys: &[&str]) -> Outcome {
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().expect("identifier"))
            .collect();
        let delete = Delete::builder().set_objects(Some(objects)).build().expect("delete");
        let r = self.c.delete_objects().bucket(self.bucket).delete(delete).send().await;
        r.map(|_| ()).map_err(|e| code(&e))
    }
    async fn copy(&self, from: &str, to: &str) -> Outcome {
        let r = self
            .c
            .copy_object()
            .bucket(self.bucket)
            .key(to)
            .copy_source(format!("{}/{from}", self.bucket))
            .send()
            .await;
        r.map(|_| ()).map_err(|e| code(&e))
    }
    async fn create_bucket(&self, name: &str) -> Outcome {
        let r = self.c.create_bucket().bucket(name).send().await;
        r.map(|_| ()).map_err(|e| code(&e))
    }
    async fn buckets(&self) -> Vec<String> {
        let out = self.c.list_buckets().send().await.expect("ListBuckets");
        out.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect()
    }
}

fn expect(failures: &mut Vec<String>, who: &str, what: &str, got: Outcome, allowed: bool) {
    match (got, allowed) {
        (Ok(()), true) => {}
        (Err(e), false) if e == "AccessDenied" => {}
        (got, _) => failures.push(format!(
            "{who}: {what}: got {got:?}, the rules {}",
            if allowed { "allow it" } else { "refuse it" }
        )),
    }
}

/// Raw unsigned request; the status code.
fn raw(port: u16, method: &str, path: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_get_exactly_what_their_rules_grant() {
    let origin = seaweed::shared();
    let bucket = origin.new_bucket("authz").await;
    let other_bucket = origin.new_bucket("authz-other").await;
    for key in [
        "team/x",
        "team/del",
        "team/u",
        "other/o",
        "other/del",
        "public/p",
        "public/u",
    ] {
        origin.put_object(&bucket, key, b"data".to_vec()).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("identities.toml");
    std::fs::write(&file, IDENTITIES.replace("BUCKET", &bucket)).expect("write identities");
    let file_arg = file.to_string_lossy().into_owned();
    let proxy = S3Cached::builder()
        .origin(&origin.endpoint())
        .client_credentials("full", "full-secret")
        .args(["--identities", file_arg.as_str()])
        .env("TEAM_SECRET", "team-secret")
        .start();
    let full = s3_client(&proxy.endpoint(), "full", "full-secret");
    // Cache three objects: their GETs below are hot-path hits; `*/u` stay uncached.
    for key in ["team/x", "other/o", "public/p"] {
        full.get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("warm GET");
    }
    let mut failures = Vec::new();
    let f = &mut failures;

    // Full access.
    let ops = Ops {
        c: &full,
        bucket: &bucket,
    };
    expect(f, "full", "GET cached", ops.get("other/o").await, true);
    expect(f, "full", "PUT", ops.put("other/full").await, true);
    expect(f, "full", "LIST all", ops.list("").await, true);
    let all = ops.buckets().await;
    assert!(
        all.contains(&bucket) && all.contains(&other_bucket),
        "full sees every bucket: {all:?}"
    );

    // Read-only on the bucket.
    let reader = s3_client(&proxy.endpoint(), "reader", "reader-secret");
    let ops = Ops {
        c: &reader,
        bucket: &bucket,
    };
    expect(f, "reader", "GET cached (hot path)", ops.get("team/x").await, true);
    expect(f, "reader", "GET uncached", ops.get("other/del").await, true);
    expect(f, "reader", "HEAD", ops.head("team/x").await, true);
    expect(f, "reader", "LIST all", ops.list("").await, true);
    expect(f, "reader", "PUT", ops.put("team/by-reader").await, false);
    expect(f, "reader", "DELETE", ops.delete("team/del").await, false);
    expect(
        f,
        "reader",
        "DeleteObjects",
        ops.delete_many(&["team/del"]).await,
        false,
    );
    expect(f, "reader", "COPY", ops.copy("team/x", "team/copy-r").await, false);
    expect(
        f,
        "reader",
        "CreateBucket",
        ops.create_bucket(&format!("{bucket}-r")).await,
        false,
    );
    assert_eq!(ops.buckets().await, vec![bucket.clone()], "reader sees only its bucket");

    // Read, list and write under team/.
    let team = s3_client(&proxy.endpoint(), "team", "team-secret");
    let ops = Ops {
        c: &team,
        bucket: &bucket,
    };
    expect(
        f,
        "team",
        "GET cached in prefix (hot path)",
        ops.get("team/x").await,
        true,
    );
    expect(f, "team", "GET uncached in prefix", ops.get("team/u").await, true);
    expect(
        f,
        "team",
        "GET cached outside (hot path)",
        ops.get("other/o").await,
        false,
    );
    expect(f, "team", "GET uncached outside", ops.get("other/del").await, false);
    expect(f, "team", "HEAD outside", ops.head("other/o").await, false);
    expect(f, "team", "PUT in prefix", ops.put("team/new").await, true);
    expect(f, "team", "PUT outside", ops.put("other/by-team").await, false);
    expect(f, "team", "LIST in prefix", ops.list("team/").await, true);
    expect(f, "team", "LIST whole bucket", ops.list("").await, false);
    expect(
        f,
        "team",
        "DeleteObjects with a key outside",
        ops.delete_many(&["team/del", "other/del"]).await,
        false,
    );
    expect(
        f,
        "team",
        "COPY from outside",
        ops.copy("other/o", "team/copy-t").await,
        false,
    );
    expect(f, "team", "COPY inside", ops.copy("team/x", "team/copy-ok").await, true);
    expect(f, "team", "DELETE in prefix", ops.delete("team/del").await, true);
    expect(
        f,
        "team",
        "CreateBucket",
        ops.create_bucket(&format!("{bucket}-t")).await,
        false,
    );
    assert_eq!(ops.buckets().await, vec![bucket.clone()], "team sees only its bucket");

    // Anonymous: read under public/ only.
    let port = proxy.port();
    let get = |key: &str| {
        let url = format!("{}/{bucket}/{key}", proxy.endpoint());
        async move { http_get(&url).await.expect("anonymous GET").0 }
    };
    for (what, key, status) in [
        ("GET cached public (hot path)", "public/p", 200),
        ("GET uncached public", "public/u", 200),
        ("GET cached outside (hot path)", "other/o", 403),
        ("GET uncached outside", "team/u", 403),
    ] {
        let got = get(key).await;
        if got != status {
            f.push(format!("anonymous: {what}: got {got}, want {status}"));
        }
    }
    for (what, method, path) in [
        ("PUT", "PUT", format!("/{bucket}/public/anon")),
        ("DELETE", "DELETE", format!("/{bucket}/public/p")),
        ("LIST", "GET", format!("/{bucket}?list-type=2")),
        ("CreateBucket", "PUT", format!("/{bucket}-anon")),
    ] {
        let got = raw(port, method, &path);
        if got != 403 {
            f.push(format!("anonymous: {what}: got {got}, want 403"));
        }
    }

    // Refused writes left the origin as it was.
    let direct = origin.client();
    for key in [
        "team/by-reader",
        "other/by-team",
        "team/copy-r",
        "team/copy-t",
        "public/anon",
    ] {
        let r = direct.head_object().bucket(&bucket).key(key).send().await;
        if r.is_ok() {
            f.push(format!("{key} exists at the origin after a refused write"));
        }
    }
    for key in ["other/del", "public/p"] {
        if direct.head_object().bucket(&bucket).key(key).send().await.is_err() {
            f.push(format!("{key} is gone from the origin after a refused delete"));
        }
    }
    assert!(failures.is_empty(), "authorization matrix:\n{}", failures.join("\n"));
    let denials = proxy
        .metric_value("s3cached_authorization_denials_total{identity=team,action=read}")
        .await;
    assert!(denials >= 3.0, "denials are counted per identity: {denials}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_identities_file_reloads_and_a_bad_one_keeps_the_rules() {
    let origin = seaweed::shared();
    let bucket = origin.new_bucket("authz-reload").await;
    origin.put_object(&bucket, "k", b"data".to_vec()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("identities.toml");
    let one = |key: &str| {
        format!(
            "[[identity]]\naccess-key = \"{key}\"\nsecret-key = \"{key}-secret\"\nallow = [{{ actions = [\"read\"], on = [\"{bucket}\"] }}]\n"
        )
    };
    std::fs::write(&file, one("first")).expect("write identities");
    let file_arg = file.to_string_lossy().into_owned();
    let proxy = S3Cached::builder()
        .origin(&origin.endpoint())
        .args(["--identities", file_arg.as_str()])
        .start();
    let client = |key: &str| s3_client(&proxy.endpoint(), key, &format!("{key}-secret"));
    let read = |c: aws_sdk_s3::Client| {
        let bucket = bucket.clone();
        async move { c.get_object().bucket(&bucket).key("k").send().await.is_ok() }
    };
    assert!(read(client("first")).await);
    assert!(!read(client("second")).await);
    // A changed file is picked up within a few seconds (mtime granularity included).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&file, one("second")).expect("rewrite identities");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !read(client("second")).await {
        assert!(
            std::time::Instant::now() < deadline,
            "reload not seen:\n{}",
            proxy.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !read(client("first")).await,
        "the old identity is gone after the reload"
    );
    // A broken file: reported, and the rules in force stay.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&file, "[[identity]]\naccess-key = 3\n").expect("break identities");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !proxy.log_contents().contains("identities file not reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "bad file not reported:\n{}",
            proxy.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(proxy.log_contents().contains("line 2"), "the error names the line");
    assert!(read(client("second")).await, "the previous rules stay in force");
    // Writes were never granted.
    let put = client("second")
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert!(put.is_err());
    put_bytes(&origin.client(), &bucket, "k2", b"y".to_vec()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_under_load_lose_no_request() {
    let origin = seaweed::shared();
    let bucket = origin.new_bucket("authz-load").await;
    origin.put_object(&bucket, "hot", b"hot".to_vec()).await;
    origin.put_object(&bucket, "cold", b"cold".to_vec()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("identities.toml");
    let version = |n: u32| {
        format!(
            "# version {n}\n[[identity]]\naccess-key = \"load\"\nsecret-key = \"load-secret\"\n\
             allow = [{{ actions = [\"read\"], on = [\"{bucket}\"] }}]\n\
             [[identity]]\naccess-key = \"extra-{n}\"\nsecret-key = \"x\"\nallow = []\n"
        )
    };
    std::fs::write(&file, version(0)).expect("write identities");
    let file_arg = file.to_string_lossy().into_owned();
    let proxy = S3Cached::builder()
        .origin(&origin.endpoint())
        .args(["--identities", file_arg.as_str()])
        .start();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, bucket, stop) = (
            s3_client(&proxy.endpoint(), "load", "load-secret"),
            bucket.clone(),
            std::sync::Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Hot-path hits and full-path misses alike.
                let key = if w % 2 == 0 { "hot" } else { "cold" };
                match client.get_object().bucket(&bucket).key(key).send().await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(code(&e)),
                }
            }
            (ok, failed)
        }));
    }
    // Five reloads, each seen (mtime) within the run.
    for n in 1..=5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        std::fs::write(&file, version(n)).expect("rewrite identities");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for w in workers {
        let (o, f) = w.await.expect("worker");
        ok += o;
        failed.extend(f);
    }
    let reloads = proxy.log_contents().matches("identities reloaded").count();
    assert!(reloads >= 3, "reloads seen: {reloads}\n{}", proxy.log_tail());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across reloads: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests ran");
}

/// An identity with origin credentials of its own: the origin's IAM decides for it, on the
/// hot path and the full path alike, even where s3cached's own rules grant everything.
#[tokio::test(flavor = "multi_thread")]
async fn origin_mapped_identities_are_decided_by_the_origin() {
    let origin = seaweed::SeaweedFs::start_with_identities(&[(
        "origin-reader",
        "origin-reader-secret",
        &["Read:allowed-bkt", "List:allowed-bkt"],
    )]);
    for bucket in ["allowed-bkt", "secret-bkt"] {
        origin.create_bucket(bucket).await;
        origin.put_object(bucket, "x", b"data".to_vec()).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("identities.toml");
    std::fs::write(
        &file,
        r#"
[[identity]]
access-key = "mapped"
secret-key = "mapped-secret"
allow = [{ actions = ["read", "list", "write", "admin"], on = ["*"] }]
[identity.origin]
access-key = "origin-reader"
secret-key = "origin-reader-secret"
"#,
    )
    .expect("write identities");
    let file_arg = file.to_string_lossy().into_owned();
    let proxy = S3Cached::builder()
        .origin(&origin.endpoint())
        .client_credentials("full", "full-secret")
        .args(["--identities", file_arg.as_str()])
        .start();
    // Both objects cached by an identity the origin lets read everything.
    let full = s3_client(&proxy.endpoint(), "full", "full-secret");
    for bucket in ["allowed-bkt", "secret-bkt"] {
        full.get_object()
            .bucket(bucket)
            .key("x")
            .send()
            .await
            .expect("warm GET");
    }
    let mapped = s3_client(&proxy.endpoint(), "mapped", "mapped-secret");
    let allowed = Ops {
        c: &mapped,
        bucket: "allowed-bkt",
    };
    let secret = Ops {
        c: &mapped,
        bucket: "secret-bkt",
    };
    let heads_before = proxy
        .metric_value(r#"s3cached_origin_requests_total{operation="HeadObject"}"#)
        .await;
    let mut failures = Vec::new();
    let f = &mut failures;
    expect(f, "mapped", "GET cached, origin allows", allowed.get("x").await, true);
    expect(f, "mapped", "GET cached again", allowed.get("x").await, true);
    expect(f, "mapped", "HEAD cached", allowed.head("x").await, true);
    expect(f, "mapped", "GET cached, origin refuses", secret.get("x").await, false);
    expect(
        f,
        "mapped",
        "HEAD cached, origin refuses",
        secret.head("x").await,
        false,
    );
    expect(f, "mapped", "LIST, origin allows", allowed.list("").await, true);
    expect(f, "mapped", "LIST, origin refuses", secret.list("").await, false);
    expect(f, "mapped", "PUT, origin refuses", allowed.put("y").await, false);
    expect(f, "mapped", "DELETE, origin refuses", allowed.delete("x").await, false);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // One origin HEAD per object asked about: the answers are kept.
    let heads = proxy
        .metric_value(r#"s3cached_origin_requests_total{operation="HeadObject"}"#)
        .await
        - heads_before;
    assert_eq!(heads, 2.0, "origin HEADs as the identity");
    // The hits were served: the refused object is still cached for others.
    full.get_object()
        .bucket("secret-bkt")
        .key("x")
        .send()
        .await
        .expect("full GET");
    assert!(
        origin
            .client()
            .head_object()
            .bucket("allowed-bkt")
            .key("y")
            .send()
            .await
            .is_err(),
        "the refused PUT reached the origin"
    );
}
