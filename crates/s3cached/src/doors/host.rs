//! Virtual-hosted-style requests: which `Host` headers name a bucket. Shared by the s3s
//! service and the hot path, so both read the same bucket from a request.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// A domain that is not a valid host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid domain {0:?} for virtual-hosted-style requests")]
pub struct InvalidDomain(pub String);

/// Virtual-hosted-style parsing: `bucket.<domain>` names a bucket; any other host (an IP
/// address, `localhost`, the bare domain) is path-style.
pub struct VirtualHosts {
    domains: Vec<String>,
}

impl VirtualHosts {
    /// Hosts under `domains` name buckets.
    ///
    /// # Errors
    /// [`InvalidDomain`] when a domain is not a valid host name.
    pub fn new(domains: &[String]) -> Result<Self, InvalidDomain> {
        let mut out = Vec::new();
        for d in domains {
            let d = d.trim().trim_matches('.').to_ascii_lowercase();
            let valid = !d.is_empty()
                && d.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !valid {
                return Err(InvalidDomain(d));
            }
            out.push(d);
        }
        Ok(Self { domains: out })
    }

    /// The bucket a `Host` header names, if it is `bucket.<domain>` (with or without port).
    #[must_use]
    pub fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        self.domains.iter().find_map(|d| {
            let prefix = name.len().checked_sub(d.len() + 1)?;
            // No slicing by index: a split inside a multi-byte character is simply no match.
            let (bucket, rest) = (name.get(..prefix)?, name.get(prefix..)?);
            let domain = rest.strip_prefix('.')?;
            (domain.eq_ignore_ascii_case(d) && !bucket.is_empty()).then_some(bucket)
        })
    }
}

impl S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(host).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_host_parsing() {
        let v = VirtualHosts::new(&["s3.local".to_owned(), "cache.example.com".to_owned()]).unwrap();
        assert_eq!(v.bucket_of("photos.s3.local"), Some("photos"));
        assert_eq!(v.bucket_of("photos.s3.local:8080"), Some("photos"));
        assert_eq!(v.bucket_of("a.b.cache.example.com"), Some("a.b"));
        assert_eq!(v.bucket_of("s3.local"), None);
        assert_eq!(v.bucket_of("127.0.0.1:8080"), None);
        assert_eq!(v.bucket_of("xs3.local"), None);
        assert!(VirtualHosts::new(&["bad domain".to_owned()]).is_err());
    }

    #[test]
    fn non_ascii_hosts_do_not_panic() {
        // Found by the `host` fuzz target: the domain's length from the end fell inside `é`.
        let v = VirtualHosts::new(&["s3.local".to_owned()]).unwrap();
        assert_eq!(v.bucket_of("és3.local"), None);
        assert_eq!(v.bucket_of("és3.local:80"), None);
        assert_eq!(v.bucket_of("bücket.s3.local"), Some("bücket"));
        // The character before the domain is multi-byte too.
        assert_eq!(v.bucket_of("b\u{fffd}.local"), None);
    }
}
