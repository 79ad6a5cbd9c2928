//! One conformance suite, run through s3cached against every origin setup: a real S3 server
//! (SeaweedFS) and the development-mode local directory.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use support::proxy::S3Cached;

const CLIENT_KEY: &str = "conformance-key";
const CLIENT_SECRET: &str = "conformance-secret";

fn client_args() -> [&'static str; 4] {
    ["--access-key", CLIENT_KEY, "--secret-key", CLIENT_SECRET]
}

/// The suite: everything a client does most, through s3cached, against whatever origin `p`
/// fronts. Creates its own bucket through s3cached.
async fn run_suite(p: &S3Cached, bucket: &str) {
    let c = p.client(CLIENT_KEY, CLIENT_SECRET);
    c.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket through s3cached");
    c.head_bucket().bucket(bucket).send().await.expect("head bucket");

    // Write-through, then hit.
    c.put_object()
        .bucket(bucket)
        .key("dir/a.txt")
        .body(ByteStream::from_static(b"alpha"))
        .content_type("text/plain")
        .metadata("k", "v")
        .send()
        .await
        .expect("put");
    for _ in 0..2 {
        let got = c
            .get_object()
            .bucket(bucket)
            .key("dir/a.txt")
            .send()
            .await
            .expect("get");
        assert_eq!(got.content_type(), Some("text/plain"));
        assert_eq!(got.metadata().and_then(|m| m.get("k")).map(String::as_str), Some("v"));
        assert_eq!(got.body.collect().await.unwrap().to_vec(), b"alpha");
    }
    let head = c
        .head_object()
        .bucket(bucket)
        .key("dir/a.txt")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(5));

    // Ranges on the cached object.
    let r = c
        .get_object()
        .bucket(bucket)
        .key("dir/a.txt")
        .range("bytes=1-3")
        .send()
        .await
        .expect("range");
    assert_eq!(r.content_range(), Some("bytes 1-3/5"));
    assert_eq!(r.body.collect().await.unwrap().to_vec(), b"lph");

    // Missing keys are the origin's 404, not cached.
    for _ in 0..2 {
        let err = c
            .get_object()
            .bucket(bucket)
            .key("missing")
            .send()
            .await
            .expect_err("missing");
        assert!(err.into_service_error().is_no_such_key());
    }

    // Overwrite, copy, list.
    c.put_object()
        .bucket(bucket)
        .key("dir/a.txt")
        .body(ByteStream::from_static(b"alpha-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(support::clients::get_bytes(&c, bucket, "dir/a.txt").await, b"alpha-2");
    c.put_object()
        .bucket(bucket)
        .key("dir/b.txt")
        .body(ByteStream::from_static(b"beta"))
        .send()
        .await
        .unwrap();
    let _ = support::clients::get_bytes(&c, bucket, "dir/b.txt").await;
    c.copy_object()
        .bucket(bucket)
        .key("dir/b.txt")
        .copy_source(format!("{bucket}/dir/a.txt"))
        .send()
        .await
        .expect("copy");
    assert_eq!(support::clients::get_bytes(&c, bucket, "dir/b.txt").await, b"alpha-2");
    let listed = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix("dir/")
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/a.txt", "dir/b.txt"]);

    // Deletes invalidate.
    c.delete_object()
        .bucket(bucket)
        .key("dir/a.txt")
        .send()
        .await
        .expect("delete");
    assert!(c.get_object().bucket(bucket).key("dir/a.txt").send().await.is_err());
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("dir/b.txt").build().unwrap())
        .build()
        .unwrap();
    c.delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .expect("delete objects");
    assert!(c.get_object().bucket(bucket).key("dir/b.txt").send().await.is_err());
    c.delete_bucket().bucket(bucket).send().await.expect("delete bucket");
}

#[tokio::test]
async fn seaweedfs_origin() {
    let origin = support::seaweed::shared();
    let p = S3Cached::builder()
        .origin(&origin.endpoint())
        .args(client_args())
        .start();
    run_suite(&p, &support::util::unique_bucket("conf-seaweed")).await;
}

#[tokio::test]
async fn local_directory_origin() {
    let p = S3Cached::builder()
        .args(["--local-dir", "data"])
        .args(client_args())
        .start();
    run_suite(&p, &support::util::unique_bucket("conf-local")).await;
    assert!(
        p.dir().join("data").is_dir(),
        "the local origin lives in the configured directory"
    );
}
