//! Polling an SQS queue for S3 event notifications (what AWS S3 delivers to), with long
//! polling. A message is deleted only after every event in it was applied; a message that
//! does not parse, or keeps failing, is counted as poison and dropped instead of retried
//! forever.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use tracing::{debug, info, warn};

use super::apply::Applier;
use super::parse::parse;
use crate::model::config::SqsConfig;

async fn client(config: &SqsConfig) -> aws_sdk_sqs::Client {
    let shared = crate::origin::aws_shared_config(&config.region, config.credentials.as_ref(), None).await;
    let mut builder = aws_sdk_sqs::config::Builder::from(&shared);
    if let Some(url) = &config.endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_sqs::Client::from_conf(builder.build())
}

/// Starts the poller; it runs until the returned handle is aborted.
pub fn spawn(
    applier: Arc<Applier>,
    config: SqsConfig,
    metrics: Arc<crate::metrics::Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sqs = client(&config).await;
        info!(queue = %config.queue_url, "polling SQS for S3 event notifications");
        // SQS long polls in whole seconds; below one second, poll without waiting and pause
        // between empty receives instead of spinning.
        let wait = i32::try_from(config.wait.as_secs().min(20)).unwrap_or(20);
        let pause = (wait == 0).then(|| config.wait.max(Duration::from_millis(100)));
        let mut backoff = Duration::from_millis(200);
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&config.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await;
            let messages = match received {
                Ok(out) => {
                    backoff = Duration::from_millis(200);
                    let messages = out.messages.unwrap_or_default();
                    if messages.is_empty()
                        && let Some(pause) = pause
                    {
                        tokio::time::sleep(pause).await;
                    }
                    messages
                }
                Err(e) => {
                    warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS receive failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            for m in messages {
                let Some(receipt) = m.receipt_handle() else { continue };
                let receives: u32 = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let done = match parse(m.body().unwrap_or_default()) {
                    Err(e) => {
                        warn!(error = %e, "dropping an SQS message that is not an S3 event notification");
                        metrics.poison_message();
                        true
                    }
                    Ok(events) => {
                        let mut ok = true;
                        for event in &events {
                            if let Err(e) = applier.apply(event, "sqs").await {
                                debug!(error = %e, key = %event.key, "event failed; the message will be retried");
                                ok = false;
                            }
                        }
                        if !ok && receives >= config.max_receives {
                            warn!(receives, "dropping an SQS message that keeps failing");
                            metrics.poison_message();
                        }
                        ok || receives >= config.max_receives
                    }
                };
                if done
                    && let Err(e) = sqs
                        .delete_message()
                        .queue_url(&config.queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                {
                    warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS delete failed");
                }
            }
        }
    })
}
