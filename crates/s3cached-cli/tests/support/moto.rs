//! moto's server (PyPI `moto[server]`, installed into the test virtualenv): S3 and SQS in one
//! process on a free port, with S3 event notifications delivered to SQS queues the way AWS
//! delivers them. Killed when its handle drops.
//!
//! moto accepts any credentials; tests sign with [`MOTO_ACCESS_KEY`] / [`MOTO_SECRET_KEY`] in
//! [`super::REGION`]. The SQS helpers below make queues, point bucket notifications at them
//! and watch their depth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::time::Instant;

use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;

use super::REGION;
use super::clients::s3_client;
use super::process::{log_file, log_tail, signal, spawn_tied_to_process, wait_for_http_200, wait_with_timeout};
use super::util::{free_port, make_temp_dir, timeout_from_env, venv_bin};

/// Access key for moto (it accepts anything).
pub const MOTO_ACCESS_KEY: &str = "testing";
/// Secret key for moto (it accepts anything).
pub const MOTO_SECRET_KEY: &str = "testing";

/// How long [`Moto::start`] waits for the server to answer (the first start imports a lot of
/// Python); overridable with `S3CACHED_TEST_STARTUP_TIMEOUT_SECS`.
const MOTO_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `python -m moto.server` on 127.0.0.1.
pub struct Moto {
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers HTTP. Blocks; callable from sync and
    /// async tests.
    pub fn start() -> Moto {
        let python = venv_bin("python");
        let port = free_port();
        let dir = make_temp_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "moto");
        let log_path = dir.join("moto.log");
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            // Unbuffered, so the log is complete when a test shows it.
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log_file(&log_path))
            .stderr(log_file(&log_path));
        let child =
            spawn_tied_to_process(cmd).unwrap_or_else(|e| panic!("spawn {} -m moto.server: {e}", python.display()));
        let mut moto = Moto {
            port,
            dir,
            log_path,
            child: Some(child),
        };
        moto.wait_ready(timeout_from_env(MOTO_STARTUP_TIMEOUT));
        moto
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let url = format!("{}/moto-api/", self.endpoint());
        wait_for_http_200("moto", &url, self.child.as_mut(), &self.log_path, timeout);
    }

    /// `http://127.0.0.1:PORT`: the S3 and the SQS endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An S3 client straight to moto (path-style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint(), MOTO_ACCESS_KEY, MOTO_SECRET_KEY)
    }

    /// An SQS client for moto.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                MOTO_ACCESS_KEY,
                MOTO_SECRET_KEY,
                None,
                None,
                "s3cached-tests",
            ))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// Flags that make s3cached use this moto as its origin.
    pub fn origin_args(&self) -> Vec<String> {
        [
            "--origin-endpoint",
            &self.endpoint(),
            "--origin-path-style",
            "--origin-region",
            REGION,
            "--origin-access-key",
            MOTO_ACCESS_KEY,
            "--origin-secret-key",
            MOTO_SECRET_KEY,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// Everything moto logged so far (one line per request).
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last lines of moto's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGKILL);
            let _ = wait_with_timeout(&mut child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates `bucket` and `queue` in moto and points the bucket's notifications for created and
/// removed objects at the queue. Returns the queue URL.
pub async fn bucket_notifying_queue(moto: &Moto, bucket: &str, queue: &str) -> String {
    let (s3, sqs) = (moto.s3(), moto.sqs());
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket in moto");
    let queue_url = create_queue(moto, queue, None).await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes QueueArn")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("a QueueArn attribute");
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .id("s3cached-events")
                .queue_arn(arn)
                .events(Event::S3ObjectCreated)
                .events(Event::S3ObjectRemoved)
                .build()
                .expect("queue configuration"),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(config)
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
    queue_url
}

pub async fn create_queue(moto: &Moto, name: &str, visibility_timeout_secs: Option<u32>) -> String {
    let mut create = moto.sqs().create_queue().queue_name(name);
    if let Some(secs) = visibility_timeout_secs {
        create = create.attributes(QueueAttributeName::VisibilityTimeout, secs.to_string());
    }
    create
        .send()
        .await
        .expect("CreateQueue in moto")
        .queue_url
        .expect("a queue URL")
}

/// Messages in the queue: (visible, in flight).
pub async fn queue_depth(moto: &Moto, queue_url: &str) -> (u64, u64) {
    let attrs = moto
        .sqs()
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    let get = |name: &QueueAttributeName| attrs.get(name).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    (
        get(&QueueAttributeName::ApproximateNumberOfMessages),
        get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

pub async fn wait_queue_empty(moto: &Moto, queue_url: &str, timeout: Duration) {
    let started = Instant::now();
    loop {
        let depth = queue_depth(moto, queue_url).await;
        if depth == (0, 0) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "queue still holds (visible, in flight) = {depth:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
