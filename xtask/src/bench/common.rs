//! What every benchmark shares: running the seed's handler once, and the verdict on a target.

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
