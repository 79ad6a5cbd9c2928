//! The one authorization decision and the s3s hooks around it, against an identities file.

use super::*;
use crate::model::config::Credentials;

fn authorizer() -> Authorizer {
    let file = r#"
[[identity]]
access-key = "ro"
secret-key = "s"
allow = [{ actions = ["read", "list"], on = ["media/public/"] }]

[[identity]]
access-key = "bucket-admin"
secret-key = "s"
allow = [{ actions = ["read", "list", "write", "admin"], on = ["media"] }]

[anonymous]
allow = [{ actions = ["read"], on = ["site"] }]

[[event-sender]]
name = "minio"
token = "hook-secret"
on = ["media/thumbs/"]
"#;
    let mut ids = Identities::parse(file, |_| None).unwrap();
    ids.add_full_access(Credentials {
        access_key: "full".into(),
        secret_key: "s".into(),
    });
    Authorizer::new(ids, None)
}

#[test]
fn full_access_may_do_everything() {
    let a = authorizer();
    for action in Action::ALL {
        for target in [
            Target::Service,
            Target::Bucket("x"),
            Target::Object("x", "k"),
            Target::Listing("x", ""),
        ] {
            assert!(a.authorize(Caller::AccessKey("full"), action, target).is_ok());
        }
        assert!(
            a.authorize(Caller::AccessKey("other"), action, Target::Service)
                .is_err()
        );
    }
}

#[test]
fn prefix_grants_stay_in_their_prefix() {
    let a = authorizer();
    let ro = Caller::AccessKey("ro");
    assert!(
        a.authorize(ro, Action::Read, Target::Object("media", "public/a"))
            .is_ok()
    );
    assert!(
        a.authorize(ro, Action::Read, Target::Object("media", "private/a"))
            .is_err()
    );
    assert!(
        a.authorize(ro, Action::Write, Target::Object("media", "public/a"))
            .is_err()
    );
    assert!(
        a.authorize(ro, Action::List, Target::Listing("media", "public/2026/"))
            .is_ok()
    );
    assert!(a.authorize(ro, Action::List, Target::Listing("media", "")).is_err());
    assert!(a.authorize(ro, Action::Admin, Target::Bucket("media")).is_err());
    assert!(a.sees_bucket(ro, "media") && !a.sees_bucket(ro, "site"));
    let admin = Caller::AccessKey("bucket-admin");
    assert!(a.authorize(admin, Action::Admin, Target::Bucket("media")).is_ok());
    assert!(a.authorize(admin, Action::Admin, Target::Bucket("site")).is_err());
}

#[test]
fn anonymous_gets_only_its_grants() {
    let a = authorizer();
    assert!(
        a.authorize(Caller::Anonymous, Action::Read, Target::Object("site", "i.html"))
            .is_ok()
    );
    assert!(
        a.authorize(Caller::Anonymous, Action::Read, Target::Object("media", "x"))
            .is_err()
    );
    assert!(
        a.authorize(Caller::Anonymous, Action::List, Target::Listing("site", ""))
            .is_err()
    );
    assert!(
        a.authorize(Caller::Anonymous, Action::Write, Target::Object("site", "i.html"))
            .is_err()
    );
    let none = Authorizer::new(Identities::default(), None);
    assert!(
        none.authorize(Caller::Anonymous, Action::Read, Target::Object("site", "k"))
            .is_err()
    );
}

#[test]
fn event_senders_are_named_by_token_and_held_to_their_grants() {
    let a = authorizer();
    assert!(a.has_event_senders());
    assert_eq!(a.event_sender(Some("Bearer hook-secret")).as_deref(), Some("minio"));
    for bad in [
        None,
        Some("hook-secret"),
        Some("Bearer hook-secre"),
        Some("Bearer hook-secrett"),
        Some("bearer hook-secret"),
        Some("Bearer s"),
    ] {
        assert_eq!(a.event_sender(bad), None, "{bad:?}");
    }
    let minio = Caller::EventSender("minio");
    assert!(
        a.authorize(minio, Action::Notify, Target::Object("media", "thumbs/a"))
            .is_ok()
    );
    assert!(
        a.authorize(minio, Action::Notify, Target::Object("media", "b"))
            .is_err()
    );
    assert!(
        a.authorize(minio, Action::Read, Target::Object("media", "thumbs/a"))
            .is_err()
    );
    // S3 identities, even with full access, cannot notify; senders cannot be S3 callers.
    assert!(
        a.authorize(
            Caller::AccessKey("full"),
            Action::Notify,
            Target::Object("media", "thumbs/a")
        )
        .is_err()
    );
    assert!(
        a.authorize(Caller::EventSender("full"), Action::Notify, Target::Object("x", "k"))
            .is_err()
    );
    assert!(!a.sees_bucket(minio, "media"));
    a.reload(Identities::default());
    assert!(!a.has_event_senders() && a.event_sender(Some("Bearer hook-secret")).is_none());
}

#[test]
fn public_read_never_writes() {
    let ids = Identities {
        anonymous: vec![Grant::public_read()],
        ..Identities::default()
    };
    let a = Authorizer::new(ids, None);
    for op in ["GetObject", "HeadObject", "ListObjectsV2", "ListBuckets"] {
        assert!(
            a.authorize(Caller::Anonymous, Action::of(op), Target::Object("b", "k"))
                .is_ok(),
            "{op}"
        );
    }
    for op in [
        "PutObject",
        "DeleteObject",
        "DeleteObjects",
        "CreateBucket",
        "PutBucketPolicy",
        "SomethingNew",
    ] {
        assert!(
            a.authorize(Caller::Anonymous, Action::of(op), Target::Bucket("b"))
                .is_err(),
            "{op}"
        );
    }
}

#[tokio::test]
async fn form_uploads_are_checked_on_their_key() {
    let a = Arc::new(authorizer());
    let access = a.s3s_access();
    let upload = |key: &str| S3Request {
        input: PutObjectInput::builder()
            .bucket("media".into())
            .key(key.into())
            .build()
            .unwrap(),
        method: http::Method::POST,
        uri: http::Uri::from_static("/media"),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: Some(s3s::auth::Credentials {
            access_key: "ro".into(),
            secret_key: "s".into(),
        }),
        region: None,
        service: None,
        trailing_headers: None,
    };
    // "ro" may read media/public/ but write nothing.
    assert!(access.put_object(&mut upload("public/x")).await.is_err());
    let full = Arc::new(Authorizer::new(
            Identities::parse(
                "[[identity]]\naccess-key = \"ro\"\nsecret-key = \"s\"\nallow = [{ actions = [\"write\"], on = [\"media/up/\"] }]\n",
                |_| None,
            )
            .unwrap(),
            None,
        ));
    let access = full.s3s_access();
    assert!(access.put_object(&mut upload("up/x")).await.is_ok());
    assert!(access.put_object(&mut upload("elsewhere/x")).await.is_err());
}

#[test]
fn reload_replaces_rules_and_secrets() {
    let a = authorizer();
    assert!(
        a.authorize(
            Caller::AccessKey("ro"),
            Action::Read,
            Target::Object("media", "public/a")
        )
        .is_ok()
    );
    a.reload(Identities::default());
    assert!(
        a.authorize(
            Caller::AccessKey("ro"),
            Action::Read,
            Target::Object("media", "public/a")
        )
        .is_err()
    );
}
