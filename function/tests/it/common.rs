//! What the function's integration tests share: an emulator with the deployment's topic, and
//! the function's configuration and handler context built from its variables.

use emulator::Emulator;
use function::config::Config;
use function::context::Context;
use std::collections::HashMap;

/// A running emulator, a client of its EC2, and the topic summaries go to.
pub struct Setup {
    pub emulator: Emulator,
    pub sdk: aws_config::SdkConfig,
    pub ec2: aws_sdk_ec2::Client,
    pub topic_arn: String,
}

/// An emulator with the deployment's topic.
pub async fn setup() -> Setup {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let topic = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name("smartvault")
        .send()
        .await
        .unwrap();
    Setup {
        ec2: aws_sdk_ec2::Client::new(&sdk),
        topic_arn: topic.topic_arn().unwrap().to_owned(),
        sdk,
        emulator,
    }
}

impl Setup {
    /// A handler context for `deployment` with the default settings.
    pub fn context(&self, deployment: &str) -> Context {
        Context::new(&self.sdk, self.config(deployment, &[]))
    }

    /// The function's configuration for `deployment`, with `extra` variables set.
    pub fn config(&self, deployment: &str, extra: &[(&str, &str)]) -> Config {
        let mut map: HashMap<&str, String> = HashMap::from([
            ("SNS_TOPIC_ARN", self.topic_arn.clone()),
            ("DEPLOYMENT", deployment.to_owned()),
        ]);
        map.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Config::from_lookup(|name| map.get(name).cloned()).unwrap()
    }
}
