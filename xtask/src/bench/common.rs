//! What every benchmark shares: a fresh emulator state with a topic and a two-volume fleet,
//! running the seed's handler once, and the verdict on a target.

use std::path::Path;
use std::process::{Command, Stdio};

/// The seed's handler, run once under the tool environment's Python with `env` (its AWS
/// endpoint and credentials), publishing to `topic`.
pub fn seed_command(seed: &Path, topic: &str, env: &[(String, String)]) -> Command {
    let mut command = Command::new(crate::build::tools::bin("python"));
    command
        .arg(
            emulator::workspace_root()
                .join("tools")
                .join("bench")
                .join("seed_run.py"),
        )
        .arg(seed)
        .arg(r#"{"action": "manual-trigger"}"#)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SNS_TOPIC_ARN", topic)
        .env("RETENTION_DAYS", "7")
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::null());
    command
}

/// How a report names a target: met, or MISSED.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The emulator emptied, then a topic `topic` and `instances` two-volume instances: the topic's
/// ARN and the fleet.
pub async fn fresh_fleet(
    emulator: &emulator::Emulator,
    aws: &crate::aws::Aws,
    topic: &str,
    instances: usize,
) -> anyhow::Result<(String, Vec<emulator::fleet::FleetInstance>)> {
    emulator.reset()?;
    let topic = aws_sdk_sns::Client::new(&aws.sdk)
        .create_topic()
        .name(topic)
        .send()
        .await
        .map_err(crate::aws::sdk_error)?;
    let fleet =
        emulator::fleet::launch_all(&aws.ec2, &emulator::fleet::two_volume_fleet(instances))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    Ok((topic.topic_arn().unwrap_or_default().to_owned(), fleet))
}
