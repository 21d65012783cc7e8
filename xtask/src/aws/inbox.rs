//! An SQS queue subscribed to a topic: what SNS delivers, as a subscriber receives it (the
//! emulator's own record of messages cannot be read once it holds a large fleet, or a function).

use crate::aws::Aws;
use anyhow::{Context, Result};

/// An SQS queue subscribed to the topic: what SNS delivers, as a subscriber receives it.
pub struct Inbox {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

/// One SNS notification as the queue received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub subject: String,
    pub message: String,
}

impl Inbox {
    /// A new queue `name`, subscribed to `topic_arn`.
    pub async fn subscribe(aws: &Aws, name: &str, topic_arn: &str) -> Result<Self> {
        let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
        let queue = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(crate::aws::sdk_error)?;
        let url = queue.queue_url().unwrap_or_default().to_owned();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(crate::aws::sdk_error)?;
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        aws_sdk_sns::Client::new(&aws.sdk)
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .map_err(crate::aws::sdk_error)?;
        Ok(Inbox { sqs, url })
    }

    /// Every notification delivered so far.
    pub async fn drain(&self) -> Result<Vec<Notification>> {
        let mut all = Vec::new();
        while let Some(next) = self.try_next().await? {
            all.push(next);
        }
        Ok(all)
    }

    /// The next delivered notification.
    pub async fn next(&self) -> Result<Notification> {
        self.try_next().await?.context("SNS delivered no summary")
    }

    /// The next delivered notification, if one comes within five seconds.
    async fn try_next(&self) -> Result<Option<Notification>> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .wait_time_seconds(5)
            .send()
            .await
            .map_err(crate::aws::sdk_error)?;
        let Some(message) = received.messages().first() else {
            return Ok(None);
        };
        if let Some(handle) = message.receipt_handle() {
            self.sqs
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(crate::aws::sdk_error)?;
        }
        let notification: serde_json::Value = serde_json::from_str(message.body().unwrap_or("{}"))?;
        let text = |key: &str| notification[key].as_str().unwrap_or_default().to_owned();
        Ok(Some(Notification {
            subject: text("Subject"),
            message: text("Message"),
        }))
    }

    pub async fn remove(self) -> Result<()> {
        self.sqs
            .delete_queue()
            .queue_url(&self.url)
            .send()
            .await
            .map_err(crate::aws::sdk_error)?;
        Ok(())
    }
}
