//! Client identities and what each may do: the data behind [`crate::doors::auth`], and the parser of
//! the identities file (`--identities FILE`, TOML).
//!
//! ```toml
//! [[identity]]
//! access-key = "analytics"
//! secret-env = "ANALYTICS_SECRET"     # or: secret-key = "…"
//! allow = [{ actions = ["read", "list"], on = ["datalake", "logs/2026/"] }]
//!
//! [[identity]]
//! access-key = "team-b"
//! secret-key = "…"
//! allow = [{ actions = ["read", "write"], on = ["team-b-data"] }]
//! [identity.origin]                    # optional: the origin sees this identity's own key
//! access-key = "AKIA…"
//! secret-env = "TEAM_B_ORIGIN_SECRET"  # or: secret-key = "…"
//! recheck-after = "60s"                # how long the origin's yes or no to a read is kept
//!
//! [anonymous]                          # optional: unsigned requests
//! allow = [{ actions = ["read"], on = ["public-site"] }]
//!
//! [[event-sender]]                     # optional: who may POST /events on the admin listener
//! name = "minio"
//! token-env = "MINIO_WEBHOOK_TOKEN"    # or: token = "…" (sent as `Authorization: Bearer …`)
//! on = ["media", "logs/2026/"]         # the objects its events may invalidate or hydrate
//! ```
//!
//! `on` names a bucket (`media`), a key prefix in a bucket (`media/thumbs/`) or everything
//! (`*`). Actions: `read` (GET, HEAD and other object reads), `list` (listings), `write`
//! (PUT, DELETE, multipart, copy destination, tagging …) and `admin` (bucket creation,
//! deletion and configuration).

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::model::config::Credentials;

/// What an operation does, as far as authorization is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Reads an object or its attributes (GetObject, HeadObject, GetObjectTagging, …).
    Read,
    /// Lists buckets, objects, versions, uploads or parts.
    List,
    /// Changes objects (PutObject, DeleteObject(s), multipart uploads, copies, tagging, …).
    Write,
    /// Anything else: bucket creation, deletion and configuration.
    Admin,
    /// Tells the cache that an object changed at the origin (an event notification). Only
    /// event senders hold it; it is not an S3 operation.
    Notify,
}

impl Action {
    /// Every action an S3 request can take.
    pub const ALL: [Self; 4] = [Self::Read, Self::List, Self::Write, Self::Admin];

    /// The name used in files and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::List => "list",
            Self::Write => "write",
            Self::Admin => "admin",
            Self::Notify => "notify",
        }
    }
}

/// Where a grant applies: a bucket, a key prefix in one, or everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// Every bucket and key.
    Everything,
    /// Keys of `bucket` that start with `prefix` (empty: the whole bucket).
    Prefix {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
}

impl Resource {
    /// Parses `*`, `bucket` or `bucket/prefix`.
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Self::Everything);
        }
        let (bucket, prefix) = s.split_once('/').unwrap_or((s, ""));
        crate::model::key::validate_bucket(bucket).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Self::Prefix {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// True when the grant covers `key` of `bucket`.
    #[must_use]
    pub fn covers_key(&self, bucket: &str, key: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Prefix { bucket: b, prefix } => b == bucket && key.starts_with(prefix.as_str()),
        }
    }

    /// True when the grant covers a listing of `bucket` under `prefix` (every key it can
    /// return starts with the granted prefix).
    #[must_use]
    pub fn covers_listing(&self, bucket: &str, prefix: &str) -> bool {
        self.covers_key(bucket, prefix)
    }

    /// True when the grant covers the whole of `bucket` (bucket-level operations).
    #[must_use]
    pub fn covers_bucket(&self, bucket: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Prefix { bucket: b, prefix } => b == bucket && prefix.is_empty(),
        }
    }

    /// True when the grant covers anything in `bucket` (it may show in ListBuckets).
    #[must_use]
    pub fn touches_bucket(&self, bucket: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Prefix { bucket: b, .. } => b == bucket,
        }
    }
}

/// Actions allowed on resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The actions.
    pub actions: HashSet<Action>,
    /// Where.
    pub on: Vec<Resource>,
}

impl Grant {
    /// Every action on everything.
    #[must_use]
    pub fn everything() -> Self {
        Self {
            actions: Action::ALL.into_iter().collect(),
            on: vec![Resource::Everything],
        }
    }

    /// Reads and listings of everything (the `--allow-anonymous` shorthand).
    #[must_use]
    pub fn public_read() -> Self {
        Self {
            actions: [Action::Read, Action::List].into_iter().collect(),
            on: vec![Resource::Everything],
        }
    }
}

/// One client identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its key pair.
    pub credentials: Credentials,
    /// What it may do.
    pub grants: Vec<Grant>,
    /// Its own origin credentials, when the origin's IAM is to decide for it too.
    pub origin: Option<OriginIdentity>,
}

/// The origin credentials of a client identity: its forwarded requests are signed with them,
/// and its reads of cached objects are served only after the origin allowed it the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginIdentity {
    /// The key pair the origin knows.
    pub credentials: Credentials,
    /// How long the origin's answer to "may this identity read this object" is kept.
    pub recheck_after: std::time::Duration,
}

/// How long an origin's authorization of a read is kept by default.
pub const DEFAULT_RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A sender of event notifications to the webhook: it proves itself with a bearer token, and
/// its events are applied only to the objects it is granted.
#[derive(Clone, PartialEq, Eq)]
pub struct EventSender {
    /// Its name, used in logs and metrics.
    pub name: String,
    /// The bearer token it sends.
    pub token: String,
    /// [`Action::Notify`] on what its events may touch.
    pub grants: Vec<Grant>,
}

impl std::fmt::Debug for EventSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSender")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Name of the event sender given by `--webhook-token`.
pub const WEBHOOK_TOKEN_SENDER: &str = "webhook-token";

/// Every identity, and what unsigned requests may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    /// By access key.
    pub identities: BTreeMap<String, Identity>,
    /// Grants of unsigned requests (none: unsigned requests are refused).
    pub anonymous: Vec<Grant>,
    /// Who may post event notifications (none: the webhook is off).
    pub event_senders: Vec<EventSender>,
}

/// An identities file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentitiesError {
    /// Not valid TOML, or not the expected shape.
    #[error("identities file, {0}")]
    Syntax(String),
    /// A value that does not make sense.
    #[error("identities file, identity {identity:?}: {reason}")]
    Invalid {
        /// The identity (access key, or `anonymous`).
        identity: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    identity: Vec<FileIdentity>,
    anonymous: Option<FileAnonymous>,
    #[serde(default, rename = "event-sender")]
    event_sender: Vec<FileEventSender>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileEventSender {
    name: String,
    token: Option<String>,
    token_env: Option<String>,
    on: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileIdentity {
    access_key: String,
    secret_key: Option<String>,
    secret_env: Option<String>,
    #[serde(default)]
    allow: Vec<FileGrant>,
    origin: Option<FileOrigin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileOrigin {
    access_key: String,
    secret_key: Option<String>,
    secret_env: Option<String>,
    recheck_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAnonymous {
    #[serde(default)]
    allow: Vec<FileGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGrant {
    actions: Vec<Action>,
    on: Vec<String>,
}

fn grants(identity: &str, allow: Vec<FileGrant>) -> Result<Vec<Grant>, IdentitiesError> {
    let invalid = |reason: String| IdentitiesError::Invalid {
        identity: identity.to_owned(),
        reason,
    };
    allow
        .into_iter()
        .map(|g| {
            if g.actions.is_empty() || g.on.is_empty() {
                return Err(invalid("a grant needs at least one action and one resource".to_owned()));
            }
            if g.actions.contains(&Action::Notify) {
                return Err(invalid(
                    "\"notify\" is for event senders ([[event-sender]]), not S3 identities".to_owned(),
                ));
            }
            Ok(Grant {
                actions: g.actions.into_iter().collect(),
                on: resources(&g.on).map_err(invalid)?,
            })
        })
        .collect()
}

fn resources(on: &[String]) -> Result<Vec<Resource>, String> {
    on.iter()
        .map(|r| Resource::parse(r).map_err(|e| format!("invalid resource {e}")))
        .collect()
}

impl Identities {
    /// Parses an identities file; secrets named by `secret-env` are read with `env`.
    ///
    /// # Errors
    /// [`IdentitiesError`] naming the line (syntax) or the identity at fault.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, IdentitiesError> {
        let doc: FileDoc = toml::from_str(text).map_err(|e| IdentitiesError::Syntax(one_line(&e, text)))?;
        let mut out = Self::default();
        for id in doc.identity {
            let name = id.access_key.clone();
            let invalid = |reason: &str| IdentitiesError::Invalid {
                identity: name.clone(),
                reason: reason.to_owned(),
            };
            if id.access_key.is_empty() {
                return Err(invalid("empty access-key"));
            }
            let secret = secret_of(id.secret_key, id.secret_env, &env).map_err(|e| invalid(&e))?;
            let origin = match id.origin {
                None => None,
                Some(o) => {
                    if o.access_key.is_empty() {
                        return Err(invalid("empty origin access-key"));
                    }
                    let secret =
                        secret_of(o.secret_key, o.secret_env, &env).map_err(|e| invalid(&format!("origin: {e}")))?;
                    let recheck_after = match o.recheck_after.as_deref() {
                        None => DEFAULT_RECHECK_AFTER,
                        Some(text) => humantime::parse_duration(text)
                            .ok()
                            .filter(|d| !d.is_zero())
                            .ok_or_else(|| {
                                invalid(&format!("origin recheck-after {text:?} is not a positive duration"))
                            })?,
                    };
                    Some(OriginIdentity {
                        credentials: Credentials {
                            access_key: o.access_key,
                            secret_key: secret,
                        },
                        recheck_after,
                    })
                }
            };
            let identity = Identity {
                credentials: Credentials {
                    access_key: id.access_key.clone(),
                    secret_key: secret,
                },
                grants: grants(&name, id.allow)?,
                origin,
            };
            if out.identities.insert(id.access_key, identity).is_some() {
                return Err(invalid("access-key listed twice"));
            }
        }
        if let Some(anon) = doc.anonymous {
            out.anonymous = grants("anonymous", anon.allow)?;
        }
        for sender in doc.event_sender {
            let invalid = |reason: String| IdentitiesError::Invalid {
                identity: format!("event-sender {}", sender.name),
                reason,
            };
            if sender.name.is_empty() || out.event_senders.iter().any(|s| s.name == sender.name) {
                return Err(invalid(
                    "a name that is not empty and not used twice is needed".to_owned(),
                ));
            }
            if sender.on.is_empty() {
                return Err(invalid("`on` must name at least one resource".to_owned()));
            }
            let token = secret_of(sender.token, sender.token_env, &env)
                .map_err(|e| invalid(e.replace("secret-key", "token").replace("secret-env", "token-env")))?;
            let on = resources(&sender.on).map_err(invalid)?;
            out.event_senders.push(EventSender {
                name: sender.name,
                token,
                grants: vec![Grant {
                    actions: [Action::Notify].into_iter().collect(),
                    on,
                }],
            });
        }
        Ok(out)
    }

    /// Adds the event sender of `--webhook-token`: its events may touch every object.
    pub fn add_webhook_token(&mut self, token: String) {
        self.event_senders.push(EventSender {
            name: WEBHOOK_TOKEN_SENDER.to_owned(),
            token,
            grants: vec![Grant {
                actions: [Action::Notify].into_iter().collect(),
                on: vec![Resource::Everything],
            }],
        });
    }

    /// Adds a full-access identity (`--access-key`/`--secret-key`); an identity of the file
    /// with the same access key wins.
    pub fn add_full_access(&mut self, credentials: Credentials) {
        self.identities
            .entry(credentials.access_key.clone())
            .or_insert_with(|| Identity {
                credentials,
                grants: vec![Grant::everything()],
                origin: None,
            });
    }
}

/// A secret given inline or by environment variable (exactly one of them).
fn secret_of(
    inline: Option<String>,
    var: Option<String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let secret = match (inline, var) {
        (Some(s), None) => s,
        (None, Some(var)) => env(&var).ok_or_else(|| format!("environment variable {var} is not set"))?,
        _ => return Err("give exactly one of secret-key and secret-env".to_owned()),
    };
    if secret.is_empty() {
        return Err("empty secret".to_owned());
    }
    Ok(secret)
}

/// The parser's error on one line, with the line number.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let message = e.message().replace('\n', " ");
    match line {
        Some(l) => format!("line {l}: {message}"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[identity]]
access-key = "ro"
secret-key = "ro-secret"
allow = [{ actions = ["read", "list"], on = ["media", "logs/2026/"] }]

[[identity]]
access-key = "up"
secret-env = "UP_SECRET"
allow = [{ actions = ["write"], on = ["media/uploads/"] }, { actions = ["admin"], on = ["*"] }]

[anonymous]
allow = [{ actions = ["read"], on = ["public"] }]
"#;

    fn env(var: &str) -> Option<String> {
        (var == "UP_SECRET").then(|| "up-secret".to_owned())
    }

    #[test]
    fn parses_identities_and_anonymous_grants() {
        let ids = Identities::parse(FILE, env).unwrap();
        assert_eq!(ids.identities.len(), 2);
        assert_eq!(ids.identities["up"].credentials.secret_key, "up-secret");
        let ro = &ids.identities["ro"].grants[0];
        assert!(ro.actions.contains(&Action::List) && !ro.actions.contains(&Action::Write));
        assert!(ro.on[1].covers_key("logs", "2026/x") && !ro.on[1].covers_key("logs", "2025/x"));
        assert_eq!(ids.anonymous[0].on, vec![Resource::parse("public").unwrap()]);
    }

    #[test]
    fn bad_files_name_the_line_or_identity() {
        let err = |text: &str| Identities::parse(text, env).unwrap_err().to_string();
        assert!(err("[[identity]]\naccess-key = \"a\"\nsecret = \"x\"\n").contains("line 3"));
        assert!(err("[[identity]]\naccess-key = \"a\"\n").contains("exactly one of secret-key"));
        assert!(err("[[identity]]\naccess-key = \"a\"\nsecret-env = \"NOPE\"\n").contains("NOPE is not set"));
        let bad_action =
            "[[identity]]\naccess-key = \"a\"\nsecret-key = \"s\"\nallow = [{ actions = [\"fly\"], on = [\"*\"] }]\n";
        assert!(err(bad_action).contains("line 4"));
        let bad_bucket = "[[identity]]\naccess-key = \"a\"\nsecret-key = \"s\"\nallow = [{ actions = [\"read\"], on = [\"Bad_Bucket\"] }]\n";
        assert!(err(bad_bucket).contains("invalid resource"));
        let twice = "[[identity]]\naccess-key = \"a\"\nsecret-key = \"s\"\n[[identity]]\naccess-key = \"a\"\nsecret-key = \"t\"\n";
        assert!(err(twice).contains("twice"));
    }

    #[test]
    fn origin_identities_parse_and_bad_ones_are_named() {
        let text = "[[identity]]\naccess-key = \"a\"\nsecret-key = \"s\"\n[identity.origin]\naccess-key = \"oa\"\nsecret-env = \"UP_SECRET\"\nrecheck-after = \"5m\"\n";
        let ids = Identities::parse(text, env).unwrap();
        let origin = ids.identities["a"].origin.clone().unwrap();
        assert_eq!(origin.credentials.access_key, "oa");
        assert_eq!(origin.credentials.secret_key, "up-secret");
        assert_eq!(origin.recheck_after, std::time::Duration::from_secs(300));
        let err = |text: &str| Identities::parse(text, env).unwrap_err().to_string();
        let base = "[[identity]]\naccess-key = \"a\"\nsecret-key = \"s\"\n[identity.origin]\n";
        assert!(err(&format!("{base}access-key = \"oa\"\n")).contains("origin: give exactly one"));
        assert!(err(&format!("{base}access-key = \"\"\nsecret-key = \"x\"\n")).contains("empty origin"));
        assert!(
            err(&format!(
                "{base}access-key = \"oa\"\nsecret-key = \"x\"\nrecheck-after = \"0s\"\n"
            ))
            .contains("recheck-after")
        );
        assert!(
            err(&format!(
                "{base}access-key = \"oa\"\nsecret-key = \"x\"\nregion = \"x\"\n"
            ))
            .contains("line")
        );
    }

    #[test]
    fn the_example_file_loads() {
        let text = include_str!("../../../../examples/identities.toml");
        let env = |var: &str| {
            ["ANALYTICS_SECRET", "MINIO_WEBHOOK_TOKEN"]
                .contains(&var)
                .then(|| "s".to_owned())
        };
        let ids = Identities::parse(text, env).unwrap();
        assert_eq!(ids.identities.len(), 4);
        assert!(ids.identities["team-b"].origin.is_some());
        assert_eq!(ids.anonymous.len(), 1);
        assert_eq!(ids.event_senders.len(), 1);
    }

    #[test]
    fn event_senders_parse_and_bad_ones_are_named() {
        let text = "[[event-sender]]\nname = \"minio\"\ntoken-env = \"UP_SECRET\"\non = [\"media/thumbs/\"]\n";
        let ids = Identities::parse(text, env).unwrap();
        let sender = &ids.event_senders[0];
        assert_eq!((sender.name.as_str(), sender.token.as_str()), ("minio", "up-secret"));
        assert!(sender.grants[0].actions.contains(&Action::Notify));
        assert!(
            sender.grants[0].on[0].covers_key("media", "thumbs/a") && !sender.grants[0].on[0].covers_key("media", "a")
        );
        assert!(!format!("{sender:?}").contains("up-secret"), "the token is not logged");
        let err = |text: &str| Identities::parse(text, env).unwrap_err().to_string();
        assert!(err("[[event-sender]]\nname = \"m\"\non = [\"*\"]\n").contains("exactly one of token and token-env"));
        assert!(err("[[event-sender]]\nname = \"m\"\ntoken = \"t\"\non = []\n").contains("at least one resource"));
        assert!(err("[[event-sender]]\nname = \"m\"\ntoken = \"t\"\n").contains("line"));
        let twice = "[[event-sender]]\nname = \"m\"\ntoken = \"t\"\non = [\"*\"]\n".repeat(2);
        assert!(err(&twice).contains("used twice"));
        let notify_for_s3 = "[[identity]]\naccess-key = \"a\"\nsecret-key = \"s\"\nallow = [{ actions = [\"notify\"], on = [\"*\"] }]\n";
        assert!(err(notify_for_s3).contains("event senders"));
    }

    #[test]
    fn resources_cover_what_they_name() {
        let prefix = Resource::parse("media/thumbs/").unwrap();
        assert!(prefix.covers_key("media", "thumbs/a.jpg"));
        assert!(!prefix.covers_key("media", "thumb"));
        assert!(!prefix.covers_key("other", "thumbs/a.jpg"));
        assert!(prefix.covers_listing("media", "thumbs/2026/"));
        assert!(!prefix.covers_listing("media", ""));
        assert!(!prefix.covers_bucket("media") && prefix.touches_bucket("media"));
        assert!(Resource::parse("media").unwrap().covers_bucket("media"));
        assert!(Resource::Everything.covers_listing("x", ""));
        assert!(Resource::parse("Bad_Bucket").is_err());
    }
}
