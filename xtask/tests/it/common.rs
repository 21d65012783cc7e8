//! Helpers shared by the xtask end-to-end tests: scratch folders, a stand-in artifact, and
//! running the real `xtask` binary against an emulator.

#![allow(dead_code)]

use emulator::Emulator;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch folder under target/ for this test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = emulator::tools_dir().join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny zip with one `bootstrap` entry, an x86_64 ELF header and no program: the emulator
/// stores functions but never runs them.
pub fn fake_artifact(dir: &Path) -> PathBuf {
    fake_artifact_for(dir, "bootstrap.zip", 62)
}

/// Like [`fake_artifact`], for the ELF machine `machine` (62 x86_64, 183 aarch64).
pub fn fake_artifact_for(dir: &Path, name: &str, machine: u16) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    zip.start_file("bootstrap", options).unwrap();
    let mut header = vec![0u8; 64];
    header[..6].copy_from_slice(b"\x7fELF\x02\x01");
    header[18..20].copy_from_slice(&machine.to_le_bytes());
    zip.write_all(&header).unwrap();
    zip.write_all(b"not a real function\n").unwrap();
    zip.finish().unwrap();
    path
}

pub fn xtask(emulator: &Emulator, args: &[&str]) -> Output {
    xtask_with(emulator, &[], args)
}

/// Runs xtask against `emulator` with `env` on top of the emulator's settings (another
/// user's credentials, say).
pub fn xtask_with(emulator: &Emulator, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).stdin(Stdio::null());
    emulator.configure(&mut command);
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    eprintln!(
        "$ xtask {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

pub fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "exit {:?}", output.status.code());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Asserts a JSON document has exactly the documented fields (docs/ci.md).
pub fn assert_fields(document: &serde_json::Value, documented: &[&str]) {
    let mut fields: Vec<&str> = document
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut documented = documented.to_vec();
    documented.sort_unstable();
    assert_eq!(
        fields, documented,
        "the JSON output drifted from docs/ci.md"
    );
}

/// The SDK configuration of the account `role_arn` is in, in `region`: the role assumed with
/// the emulator's own credentials (before IAM is enforced, if it is).
pub async fn assumed(emulator: &Emulator, role_arn: &str, region: &str) -> aws_config::SdkConfig {
    emulator.assumed(role_arn, region).await.unwrap()
}

/// The function's handler context for `deployment` on the emulator: a topic named after it to
/// publish to, and `extra` variables beside the two every deployment has.
pub async fn function_context(
    sdk: &aws_config::SdkConfig,
    deployment: &str,
    extra: &[(&str, &str)],
) -> function::context::Context {
    let topic = aws_sdk_sns::Client::new(sdk)
        .create_topic()
        .name(deployment)
        .send()
        .await
        .unwrap();
    let mut vars = std::collections::HashMap::from([
        ("SNS_TOPIC_ARN", topic.topic_arn().unwrap().to_owned()),
        ("DEPLOYMENT", deployment.to_owned()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let config = function::config::Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
    function::context::Context::new(sdk, config)
}
