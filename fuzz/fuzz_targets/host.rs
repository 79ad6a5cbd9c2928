//! Virtual-hosted-style `Host` parsing (`host::VirtualHosts::bucket_of`), shared by s3s and the
//! hot path. Input: the `Host` value on the first line; the other lines, when they make valid
//! domains, replace the default domains.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use s3cached::doors::host::VirtualHosts;

static DEFAULT: LazyLock<VirtualHosts> =
    LazyLock::new(|| VirtualHosts::new(&["s3.local".to_owned(), "cache.example.com".to_owned()]).expect("domains"));

fuzz_target!(|data: &[u8]| {
    let mut lines = s3cached_fuzz::fields(data, usize::MAX).into_iter();
    let Some(host) = lines.next() else {
        return;
    };
    let domains: Vec<String> = lines.map(|l| l.into_owned()).collect();
    let custom = if domains.is_empty() {
        None
    } else {
        VirtualHosts::new(&domains).ok()
    };
    let hosts = custom.as_ref().unwrap_or(&*DEFAULT);
    if let Some(bucket) = hosts.bucket_of(&host) {
        assert!(!bucket.is_empty());
        // The bucket is the host's first labels, followed by a dot and a configured domain.
        let rest = host.strip_prefix(bucket).expect("bucket is a prefix of the host");
        assert!(rest.starts_with('.'), "{host:?} -> {bucket:?}");
    }
});
