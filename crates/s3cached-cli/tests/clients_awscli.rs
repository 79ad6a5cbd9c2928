//! The aws cli (v1) against a real `s3cached` process in front of the shared SeaweedFS: buckets,
//! multipart copies up and down, ls, sync, rm --recursive, and a second get-object served from
//! the cache.
//!
//! The cli signs with credentials that differ from the origin's, so every passing request also
//! proves that s3cached verified the client's signature and signed its own request to the origin.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::time::{Duration, SystemTime};

use support::cli_tools::{
    AwsCli, CLIENT_KEY, CLIENT_SECRET, TempDir, fail_with_log, ls_recursive_entries, random_bytes, start_proxy,
};
use support::seaweed::shared;
use support::util::{error_chain, unique_bucket};

// ---------------------------------------------------------------------------------------------
// 1. aws cli: mb, multipart cp up and down, ls, sync, rm --recursive
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn aws_cli_bucket_multipart_copy_sync_and_remove() {
    let seaweed = shared();
    let proxy = start_proxy(seaweed, &[]);
    let aws = AwsCli::new(&proxy.endpoint(), CLIENT_KEY, CLIENT_SECRET, || proxy.log_contents());
    let work = TempDir::new("cli-roundtrip");
    let bucket = unique_bucket("cli-roundtrip");
    let s3_bucket = format!("s3://{bucket}");

    // A bucket created through s3cached exists at the origin.
    let mb = aws.ok(["s3", "mb", &s3_bucket]);
    assert!(mb.stdout.contains(&bucket), "mb output: {}", mb.describe());
    seaweed
        .client()
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            fail_with_log(
                &proxy,
                format!("bucket made through s3cached missing at origin: {}", error_chain(&e)),
            )
        });

    // 20 MiB: above the cli's 8 MiB multipart threshold (3 parts up, ranged GETs down) and
    // above s3cached's default --max-object-size (streamed through, never cached whole).
    let size: usize = 20 * 1024 * 1024;
    let big = random_bytes(size);
    let up = work.join("big.bin");
    fs::write(&up, &big).expect("write big.bin");
    aws.cp(&up, format!("{s3_bucket}/big.bin"));

    // The origin is the source of truth: the object is there, whole, as a multipart object.
    let origin_head = seaweed
        .client()
        .head_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .unwrap_or_else(|e| {
            fail_with_log(
                &proxy,
                format!("big.bin missing at origin after `aws s3 cp`: {}", error_chain(&e)),
            )
        });
    assert_eq!(origin_head.content_length(), Some(size as i64));
    let origin_etag = origin_head.e_tag().unwrap_or_default().to_owned();
    assert!(
        origin_etag.trim_matches('"').ends_with("-3"),
        "expected a 3-part multipart ETag at the origin, got {origin_etag:?}"
    );
    let origin_bytes = seaweed
        .client()
        .get_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .expect("GetObject big.bin from origin")
        .body
        .collect()
        .await
        .expect("read big.bin from origin")
        .into_bytes();
    assert!(
        origin_bytes.as_ref() == big.as_slice(),
        "the origin's big.bin differs from the uploaded file ({} bytes vs {})",
        origin_bytes.len(),
        big.len()
    );

    // HEAD through s3cached answers like the origin.
    let head = aws.ok(["s3api", "head-object", "--bucket", &bucket, "--key", "big.bin"]);
    assert!(
        head.stdout.contains(&format!("\"ContentLength\": {size}")),
        "head-object through s3cached: {}",
        head.describe()
    );
    assert!(
        head.stdout.contains(&origin_etag.replace('"', "\\\"")),
        "head-object through s3cached should carry the origin's ETag {origin_etag}: {}",
        head.describe()
    );

    // Down again, twice (the second time nothing may come from a half-filled cache).
    for round in 0..2 {
        let down = work.join(format!("big-down-{round}.bin"));
        aws.cp(format!("{s3_bucket}/big.bin"), &down);
        let got = fs::read(&down).expect("read downloaded big.bin");
        assert_eq!(got.len(), size, "downloaded size (round {round})");
        assert!(got == big, "downloaded big.bin differs (round {round})");
    }

    // An empty object. It is uploaded on its own: awscli 1.46's bundled botocore mishandles a
    // keep-alive connection after a PUT that got its final response without `100 Continue`
    // (what hyper, like Go's net/http, answers to `Expect: 100-continue` with no body): the
    // next PUT on that connection waits for EOF and `aws s3 sync` hangs. The same happens
    // against SeaweedFS directly, so it is no fault of s3cached.
    let empty = work.join("empty.txt");
    fs::write(&empty, b"").expect("write empty.txt");
    aws.cp(&empty, format!("{s3_bucket}/empty.txt"));
    let empty_down = work.join("empty-down.txt");
    aws.cp(format!("{s3_bucket}/empty.txt"), &empty_down);
    assert_eq!(fs::read(&empty_down).expect("read empty-down.txt"), b"");

    // `aws s3 ls` lists the bucket and the objects.
    let buckets = aws.ok(["s3", "ls"]);
    assert!(
        buckets.stdout.lines().any(|l| l.ends_with(&format!(" {bucket}"))),
        "`aws s3 ls` does not list {bucket}: {}",
        buckets.describe()
    );
    let listing = aws.ok(["s3", "ls", &format!("{s3_bucket}/")]);
    assert_eq!(
        ls_recursive_entries(&listing.stdout),
        vec![(size as u64, "big.bin".to_owned()), (0, "empty.txt".to_owned())],
        "{}",
        listing.describe()
    );

    // sync of 20 small files, names with spaces, unicode and a subdirectory.
    let tree = work.join("tree");
    fs::create_dir_all(tree.join("sub dir")).expect("create tree");
    let mut expected: Vec<(u64, String)> = Vec::new();
    let names = [
        "plain.txt",
        "with space.txt",
        "two  spaces.txt",
        "ünïcödé.txt",
        "日本語のファイル.txt",
        "emoji 🚀 rocket.bin",
        "Ελληνικά.dat",
        "русский файл.txt",
        "mixed-Case_Name.TXT",
        "plus+sign.txt",
        "percent%41.txt",
        "equals=and&amp.txt",
        "(parens) [brackets].txt",
        "comma,semicolon;.txt",
        "tilde~dollar$.txt",
        "question?mark.txt",
        "sub dir/nested file.txt",
        "sub dir/ñandú.txt",
        "sub dir/deeper.bin",
        "apostrophe's.txt",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut body = format!("file {i}: {name}\n").into_bytes();
        body.extend(random_bytes(i * 37));
        let path = tree.join(name);
        fs::write(&path, &body).unwrap_or_else(|e| panic!("write {name}: {e}"));
        // Listings give LastModified in whole seconds; a file written in the same second as
        // its upload would look newer than its copy and be uploaded again by the next sync.
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(3600)))
            .unwrap_or_else(|e| panic!("set mtime of {name}: {e}"));
        expected.push((body.len() as u64, format!("synced/{name}")));
    }
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    aws.ok([
        OsStr::new("s3"),
        OsStr::new("sync"),
        tree.as_os_str(),
        OsStr::new(&format!("{s3_bucket}/synced/")),
    ]);
    let listing = aws.ok(["s3", "ls", "--recursive", &format!("{s3_bucket}/synced/")]);
    let mut listed = ls_recursive_entries(&listing.stdout);
    listed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(listed, expected, "{}", listing.describe());

    // Nothing changed locally: a second sync uploads nothing (sizes and times line up).
    let again = aws.ok([
        OsStr::new("s3"),
        OsStr::new("sync"),
        tree.as_os_str(),
        OsStr::new(&format!("{s3_bucket}/synced/")),
    ]);
    assert!(
        !again.stdout.contains("upload:"),
        "a second sync of an unchanged tree uploaded again: {}",
        again.describe()
    );

    // And the content of an awkward name round-trips through s3cached.
    let probe = "sub dir/ñandú.txt";
    let probe_down = work.join("probe-down");
    aws.cp(format!("{s3_bucket}/synced/{probe}"), &probe_down);
    assert_eq!(
        fs::read(&probe_down).expect("read probe"),
        fs::read(tree.join(probe)).expect("read probe source")
    );

    // rm --recursive empties the bucket, at the origin too.
    aws.ok(["s3", "rm", "--recursive", &format!("{s3_bucket}/")]);
    let listing = aws.run(["s3", "ls", "--recursive", &format!("{s3_bucket}/")]);
    // awscli v1 exits 1 when a listing is empty.
    assert!(
        matches!(listing.code, Some(0 | 1)) && listing.stdout.trim().is_empty(),
        "listing after rm --recursive should be empty: {}",
        listing.describe()
    );
    let at_origin = seaweed
        .client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListObjectsV2 at origin");
    assert_eq!(
        at_origin.key_count().unwrap_or(0),
        0,
        "objects left at origin: {:?}",
        at_origin.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>()
    );
    // A removed object is gone through s3cached as well (no stale cache entry).
    let gone = aws.run(["s3api", "head-object", "--bucket", &bucket, "--key", "big.bin"]);
    assert!(
        !gone.success() && (gone.stderr.contains("404") || gone.stderr.contains("Not Found")),
        "head-object of a removed object: {}",
        gone.describe()
    );

    aws.ok(["s3", "rb", &s3_bucket]);
    assert!(
        seaweed.client().head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket {bucket} still exists at the origin after `aws s3 rb`"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. aws cli: the second get-object is a cache hit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn aws_cli_second_get_object_is_served_from_cache() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("cli-cache-hit").await;
    let body = random_bytes(3000);
    seaweed.put_object(&bucket, "hot/object.bin", body.clone()).await;

    let proxy = start_proxy(seaweed, &[]);
    let aws = AwsCli::new(&proxy.endpoint(), CLIENT_KEY, CLIENT_SECRET, || proxy.log_contents());
    let work = TempDir::new("cli-cache-hit");

    const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
    const HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;
    const MISSES: &str = r#"s3cached_cache_misses_total{tier="memory"}"#;

    let mut statuses = Vec::new();
    let mut snapshots = vec![(
        proxy.metric_value(ORIGIN_GETS).await,
        proxy.metric_value(HITS).await,
        proxy.metric_value(MISSES).await,
    )];
    for round in 0..2 {
        let out = work.join(format!("out-{round}"));
        let result = aws.ok([
            OsStr::new("s3api"),
            OsStr::new("get-object"),
            OsStr::new("--bucket"),
            OsStr::new(&bucket),
            OsStr::new("--key"),
            OsStr::new("hot/object.bin"),
            out.as_os_str(),
            OsStr::new("--debug"),
        ]);
        assert_eq!(
            fs::read(&out).expect("read get-object output"),
            body,
            "get-object #{round} bytes"
        );
        assert!(
            result.stdout.contains(&format!("\"ContentLength\": {}", body.len())),
            "{}",
            result.describe()
        );
        // botocore logs the response headers as a dict at debug level.
        let status = ["hit-memory", "miss", "bypass"]
            .into_iter()
            .find(|s| result.stderr.contains(&format!("'x-s3cached': '{s}'")))
            .unwrap_or("<no x-s3cached header in the debug log>");
        statuses.push(status);
        snapshots.push((
            proxy.metric_value(ORIGIN_GETS).await,
            proxy.metric_value(HITS).await,
            proxy.metric_value(MISSES).await,
        ));
    }

    let [(g0, h0, m0), (g1, h1, m1), (g2, h2, m2)] = snapshots[..] else {
        unreachable!()
    };
    let report = format!(
        "(origin GetObject, memory hits, memory misses) before/after #1/after #2: \
         {:?}; x-s3cached: {statuses:?}",
        snapshots
    );
    if g1 - g0 != 1.0 || m1 - m0 != 1.0 {
        fail_with_log(
            &proxy,
            format!("first get-object should be one miss filled from the origin: {report}"),
        );
    }
    if g2 != g1 || h2 - h1 != 1.0 || m2 != m1 {
        fail_with_log(
            &proxy,
            format!("second get-object should be a memory hit without an origin call: {report}"),
        );
    }
    assert_eq!(h1, h0, "first get-object counted a hit: {report}");
    assert_eq!(statuses, ["miss", "hit-memory"], "{report}");
    // The aws cli's signed GET (checksum mode on) is a plain hit: the hot path answers it.
    assert_eq!(
        proxy
            .metric_value(r#"s3cached_hot_path_answers_total{operation="GetObject"}"#)
            .await,
        1.0,
        "{report}"
    );
}
