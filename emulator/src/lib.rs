//! Starts the moto AWS emulator on a free loopback port, stops it by PID, and reads its admin API.
//!
//! Every test that needs AWS owns one [`Emulator`]: a `moto_server` child process started on a
//! free port of 127.0.0.1 and killed when the value is dropped (and by the kernel, through
//! `PR_SET_PDEATHSIG`, if the owning thread dies without dropping it). The server comes from
//! the project's tool environment, which `cargo xtask tools` (or `cargo xtask test`) installs.

pub mod events;
pub mod fleet;
mod http;
pub mod loopback;
pub mod proxy;
pub mod story;

use base64::Engine as _;
use std::fmt;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region every emulator-backed test and the demo use.
pub const REGION: &str = "us-east-1";
/// The account id moto answers with; it cannot be changed.
pub const ACCOUNT_ID: &str = "123456789012";
/// The command that installs the emulator; named in every "not found" message.
pub const INSTALL_COMMAND: &str = "cargo xtask tools";
/// Overrides where `moto_server` is found (a path to the executable).
pub const MOTO_SERVER_VAR: &str = "SMARTVAULT_MOTO_SERVER";

/// What went wrong while starting or talking to the emulator.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(message: impl Into<String>) -> Error {
    Error(message.into())
}

/// The repository root (the Cargo workspace), found from this crate's own location.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the project keeps its Python tool environment and the emulator's logs.
pub fn tools_dir() -> PathBuf {
    workspace_root().join("target").join("tools")
}

/// The `moto_server` executable: `$SMARTVAULT_MOTO_SERVER`, else the project's tool environment.
pub fn moto_server_path() -> Result<PathBuf, Error> {
    resolve_moto_server(std::env::var_os(MOTO_SERVER_VAR).map(PathBuf::from))
}

fn resolve_moto_server(overridden: Option<PathBuf>) -> Result<PathBuf, Error> {
    let path =
        overridden.unwrap_or_else(|| tools_dir().join("venv").join("bin").join("moto_server"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(err(format!(
            "the AWS emulator is not installed: `{}` does not exist; run `{INSTALL_COMMAND}` \
             (or `cargo xtask test`, which installs it) and try again",
            path.display()
        )))
    }
}

/// The tool environment's Python, beside its `moto_server`.
fn python() -> Result<PathBuf, Error> {
    Ok(moto_server_path()?.with_file_name("python"))
}

/// One of the project's moto launchers in `emulator/`.
fn launcher(name: &str) -> PathBuf {
    workspace_root().join("emulator").join(name)
}

/// A running moto server on 127.0.0.1, stopped by its PID when dropped.
pub struct Emulator {
    child: Child,
    port: u16,
    endpoint: String,
    log_path: PathBuf,
}

impl Emulator {
    /// Starts a fresh emulator with an empty state.
    /// It runs moto through `emulator/fast_moto.py`, which makes moto's EC2 tag lookup
    /// constant-time without changing what it stores or answers (plain moto scans every tag of
    /// every resource for each one it describes, which a large fleet cannot afford).
    pub fn start() -> Result<Self, Error> {
        Self::start_server(&[python()?, launcher("fast_moto.py")])
    }

    /// Starts a fresh emulator that judges IAM policies as AWS would once
    /// [`Emulator::enforce_iam`] is called; until then it accepts every request, so a test can
    /// create its users and fixtures first. It runs moto through `emulator/iam_moto.py`, which
    /// checks signatures over the body as sent and names the resources each action is
    /// authorized against (plain moto checks every non-S3 action against `*`).
    pub fn start_with_iam() -> Result<Self, Error> {
        Self::start_server(&[python()?, launcher("iam_moto.py")])
    }

    /// From now on every request must be signed by an IAM user's key and allowed by that
    /// user's policies; the emulator's dummy credentials stop working.
    pub fn enforce_iam(&self) -> Result<(), Error> {
        self.admin("POST", "/moto-api/reset-auth", b"0").map(drop)
    }

    /// `command`: the server executable and any leading arguments, before the host and port.
    fn start_server(command: &[PathBuf]) -> Result<Self, Error> {
        let log_dir = tools_dir().join("emulator-logs");
        fs::create_dir_all(&log_dir)
            .map_err(|e| err(format!("failed to create `{}`: {e}", log_dir.display())))?;
        // A free port can be taken by someone else between our probe and the server's bind;
        // a second and third try on a new port cover that race.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            match Self::spawn(command, port, &log_dir) {
                Ok(emulator) => return Ok(emulator),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| err("the emulator did not start")))
    }

    fn spawn(server: &[PathBuf], port: u16, log_dir: &Path) -> Result<Self, Error> {
        let log_path = log_dir.join(format!("moto-{port}.log"));
        let recording_path = log_dir.join(format!("moto-{port}.recording"));
        let log = File::create(&log_path)
            .map_err(|e| err(format!("failed to create `{}`: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| err(format!("failed to open `{}`: {e}", log_path.display())))?;
        let (program, leading) = server
            .split_first()
            .ok_or_else(|| err("no emulator command given"))?;
        let mut command = Command::new(program);
        command
            .args(leading)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .env("MOTO_RECORDER_FILEPATH", &recording_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|e| err(format!("failed to start `{}`: {e}", program.display())))?;
        let mut emulator = Emulator {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        emulator.wait_ready(Duration::from_secs(30))?;
        Ok(emulator)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(err(format!(
                    "the emulator exited during start-up ({status}); its log `{}` ends with:\n{}",
                    self.log_path.display(),
                    self.log_tail()
                )));
            }
            if http::request(self.port, "GET", "/moto-api/reset", b"").is_ok() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(err(format!(
                    "the emulator did not answer on port {} within {timeout:?}; see `{}`",
                    self.port,
                    self.log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The endpoint URL, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The environment the AWS SDKs and CLIs read, pointing at this emulator with dummy
    /// credentials. Pass it to child processes; in-process code uses [`Emulator::sdk_config`].
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// The same settings as [`Emulator::env`], with requests sent to `endpoint` instead (a
    /// fault proxy in front of this emulator), as owned pairs for a child process.
    pub fn env_through(&self, endpoint: &str) -> Vec<(String, String)> {
        self.env()
            .into_iter()
            .map(|(k, v)| match k {
                "AWS_ENDPOINT_URL" => (k.to_owned(), endpoint.to_owned()),
                _ => (k.to_owned(), v),
            })
            .collect()
    }

    /// Points `command` at this emulator, and removes settings that could reach a real account.
    pub fn configure(&self, command: &mut Command) {
        for var in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"] {
            command.env_remove(var);
        }
        command.envs(self.env());
    }

    /// An SDK configuration equivalent to [`Emulator::env`], for clients built in-process.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.loader(&self.endpoint).load().await
    }

    /// A configuration loader like [`Emulator::sdk_config`]'s, sending requests to `endpoint`
    /// (a proxy in front of this emulator, say); callers may add retry settings.
    pub fn loader(&self, endpoint: &str) -> aws_config::ConfigLoader {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "emulator",
            ))
    }

    /// The SDK configuration of another account, in `region`: `sts:AssumeRole` of `role_arn`
    /// (any role name; moto's keys then act in the role's account, isolated from the default
    /// one), as xtask's deployer and a vault account's tests reach it.
    pub async fn assumed(
        &self,
        role_arn: &str,
        region: &str,
    ) -> Result<aws_config::SdkConfig, Error> {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config().await);
        let assumed = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name("test")
            .send()
            .await
            .map_err(|e| {
                Error(format!(
                    "AssumeRole {role_arn}: {}",
                    aws_sdk_sts::error::DisplayErrorContext(&e)
                ))
            })?;
        let keys = assumed
            .credentials()
            .ok_or_else(|| Error(format!("AssumeRole {role_arn} answered no credentials")))?;
        let credentials = aws_sdk_sts::config::Credentials::new(
            keys.access_key_id(),
            keys.secret_access_key(),
            Some(keys.session_token().to_owned()),
            None,
            "assumed",
        );
        Ok(self
            .loader(&self.endpoint)
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .load()
            .await)
    }

    /// Writes 512 KiB blocks to a volume, as an instance would (an emulator-only call): each
    /// `(index, kind, seed)` is random bytes from `seed` (`"random"`, as encrypted data looks),
    /// text (`"text"`), or no data (`"zero"`, the block freed). A snapshot made afterwards
    /// captures the volume's blocks, and the EBS direct APIs read them (fast_moto.py).
    pub fn write_volume_blocks(
        &self,
        account: &str,
        region: &str,
        volume_id: &str,
        blocks: &[(u64, &str, u64)],
    ) -> Result<(), Error> {
        self.set_config(&serde_json::json!({"smartvault": {"volume_writes": [{
            "account": account, "region": region, "volume_id": volume_id,
            "blocks": blocks.iter().map(|(i, kind, seed)| serde_json::json!([i, kind, seed])).collect::<Vec<_>>(),
        }]}}))
    }

    /// Scripts how Systems Manager treats instances (an emulator-only call, fast_moto.py):
    /// each `(instance id, script)` where the script is a JSON object such as `{"managed":
    /// false}`, `{"pre-script": "failed", "post-script": "success", "lose": ["pre-script"]}`,
    /// `{"platform": "Windows", "vss": "delay:2"}`. An instance not scripted is managed and
    /// every stage succeeds.
    pub fn script_ssm(
        &self,
        account: &str,
        region: &str,
        scripts: &[(String, serde_json::Value)],
    ) -> Result<(), Error> {
        let entries: Vec<serde_json::Value> = scripts
            .iter()
            .map(|(instance_id, script)| {
                let mut entry = script.clone();
                entry["account"] = account.into();
                entry["region"] = region.into();
                entry["instance_id"] = instance_id.as_str().into();
                entry
            })
            .collect();
        self.set_config(&serde_json::json!({"smartvault": {"ssm_instances": entries}}))
    }

    /// Makes a Systems Manager command document `name` taking Data Lifecycle Manager's stage
    /// parameters (`command`: `pre-script`, `post-script`, `dry-run`; `executionId`), as
    /// SmartVault's Linux document declares them (an emulator-only call, fast_moto.py).
    pub fn create_stage_document(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<(), Error> {
        self.set_config(&serde_json::json!({"smartvault": {"ssm_documents": [{
            "account": account, "region": region, "name": name,
        }]}}))
    }

    /// Clears every service's state.
    pub fn reset(&self) -> Result<(), Error> {
        self.admin("POST", "/moto-api/reset", b"").map(drop)
    }

    /// Sends a configuration document to `/moto-api/config`.
    pub fn set_config(&self, config: &serde_json::Value) -> Result<(), Error> {
        self.admin("POST", "/moto-api/config", config.to_string().as_bytes())
            .map(drop)
    }

    /// Moves the clock snapshot locks are judged by `seconds` past the wall clock (snapshots
    /// cannot be back-dated, so a test moves the locks' "now" instead).
    pub fn set_lock_clock(&self, seconds: i64) -> Result<(), Error> {
        self.set_config(&serde_json::json!({"smartvault": {"clock_offset_seconds": seconds}}))
    }

    /// Every message published to any SNS topic, oldest first.
    pub fn sns_messages(&self) -> Result<Vec<SnsMessage>, Error> {
        let body = self.admin("GET", "/moto-api/data.json", b"")?;
        let data: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| err(format!("the emulator's data.json is not JSON: {e}")))?;
        Ok(parse_sns_messages(&data))
    }

    /// Starts recording every request the emulator receives.
    pub fn start_recording(&self) -> Result<(), Error> {
        self.admin("POST", "/moto-api/recorder/reset-recording", b"")?;
        self.admin("POST", "/moto-api/recorder/start-recording", b"")
            .map(drop)
    }

    /// Stops recording and returns the `Action` of every recorded request, in order.
    pub fn stop_recording(&self) -> Result<Vec<String>, Error> {
        self.admin("POST", "/moto-api/recorder/stop-recording", b"")?;
        let body = self.admin("GET", "/moto-api/recorder/download-recording", b"")?;
        Ok(parse_recorded_actions(&String::from_utf8_lossy(&body)))
    }

    /// Stops recording and returns the body of every recorded request, in order (a query
    /// protocol's `Action=...&...` form, decoded).
    pub fn stop_recording_bodies(&self) -> Result<Vec<String>, Error> {
        self.admin("POST", "/moto-api/recorder/stop-recording", b"")?;
        let body = self.admin("GET", "/moto-api/recorder/download-recording", b"")?;
        Ok(parse_recorded_bodies(&String::from_utf8_lossy(&body)))
    }

    fn admin(&self, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, Error> {
        let (status, response) = http::request(self.port, method, path, body)
            .map_err(|e| err(format!("{method} {path} on the emulator failed: {e}")))?;
        if (200..300).contains(&status) {
            Ok(response)
        } else {
            Err(err(format!(
                "{method} {path} on the emulator answered HTTP {status}: {}",
                String::from_utf8_lossy(&response)
            )))
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Killed by its own PID, then reaped, so no `moto_server` outlives its owner.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message the emulator's SNS received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
}

fn parse_sns_messages(data: &serde_json::Value) -> Vec<SnsMessage> {
    let mut messages = Vec::new();
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    for topic in topics {
        let arn = topic["arn"].as_str().unwrap_or_default().to_owned();
        let sent = topic["sent_notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for notification in sent {
            // Each entry is [message_id, message, subject, attributes, group].
            messages.push(SnsMessage {
                topic_arn: arn.clone(),
                message: notification[1].as_str().unwrap_or_default().to_owned(),
                subject: notification[2].as_str().map(str::to_owned),
            });
        }
    }
    messages
}

/// The action of each recorded request: a query protocol's `Action`, or for the EBS direct
/// API (REST, no body) the operation its path names.
fn parse_recorded_actions(recording: &str) -> Vec<String> {
    let entries: Vec<serde_json::Value> = recording
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .collect();
    parse_recorded_bodies(recording)
        .iter()
        .zip(&entries)
        .filter_map(|(body, entry)| {
            action_of(body)
                .or_else(|| target_action_of(&entry["headers"]))
                .or_else(|| ebs_action_of(entry["url"].as_str().unwrap_or_default()))
        })
        .collect()
}

/// The operation a JSON-protocol request's `X-Amz-Target` names (`AmazonSSM.SendCommand`).
fn target_action_of(headers: &serde_json::Value) -> Option<String> {
    let target = headers.as_object()?.iter().find_map(|(name, value)| {
        name.eq_ignore_ascii_case("x-amz-target")
            .then(|| value.as_str())
            .flatten()
    })?;
    Some(target.rsplit('.').next()?.to_owned())
}

/// The EBS direct API operation a request path names.
fn ebs_action_of(url: &str) -> Option<String> {
    let path = url.split('?').next()?;
    let path = path.find("/snapshots/").map(|at| &path[at..])?;
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    Some(
        match parts.as_slice() {
            ["", "snapshots", _, "changedblocks"] => "ListChangedBlocks",
            ["", "snapshots", _, "blocks"] => "ListSnapshotBlocks",
            ["", "snapshots", _, "blocks", _] => "GetSnapshotBlock",
            _ => return None,
        }
        .to_owned(),
    )
}

/// The `Action` of a query-protocol request body.
fn action_of(body: &str) -> Option<String> {
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

fn parse_recorded_bodies(recording: &str) -> Vec<String> {
    recording
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|entry| {
            let raw = entry["body"].as_str().unwrap_or_default();
            if entry["body_encoded"].as_bool() == Some(true) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .unwrap_or_default();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                raw.to_owned()
            }
        })
        .collect()
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| err(format!("failed to find a free loopback port: {e}")))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| err(format!("failed to read the probe socket's port: {e}")))
}

/// Asks the kernel to SIGKILL the server when the thread that started it dies, so a
/// test process killed outright (SIGKILL, a crash) does not leave the server behind.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal would ever come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the parent exited during start-up"));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_messages_are_read_from_every_topic() {
        let data = serde_json::json!({"sns": {"Topic": [
            {"arn": "arn:a", "sent_notifications": [["id1", "hello", "subj", {}, null]]},
            {"arn": "arn:b", "sent_notifications": [["id2", "world", null, {}, null]]}
        ]}});
        assert_eq!(
            parse_sns_messages(&data),
            vec![
                SnsMessage {
                    topic_arn: "arn:a".into(),
                    subject: Some("subj".into()),
                    message: "hello".into()
                },
                SnsMessage {
                    topic_arn: "arn:b".into(),
                    subject: None,
                    message: "world".into()
                },
            ]
        );
    }

    #[test]
    fn recorded_actions_come_from_the_form_body_the_target_header_or_the_ebs_path() {
        let recording = concat!(
            r#"{"module": "ec2", "body": "Action=DescribeInstances&Version=2016-11-15"}"#,
            "\n",
            // "Version=2016-11-15&Action=CreateSnapshots&X=1", base64-encoded as moto stores it.
            r#"{"body": "VmVyc2lvbj0yMDE2LTExLTE1JkFjdGlvbj1DcmVhdGVTbmFwc2hvdHMmWD0x", "body_encoded": true}"#,
            "\n",
            r#"{"module": "sns", "body": ""}"#,
            "\n",
            r#"{"module": "ebs", "url": "http://127.0.0.1:5000/snapshots/snap-1/changedblocks?maxResults=10000", "body": ""}"#,
            "\n",
            r#"{"module": "ebs", "url": "http://127.0.0.1:5000/snapshots/snap-1/blocks/7?blockToken=x", "body": ""}"#,
            "\n",
            r#"{"module": "ssm", "headers": {"X-Amz-Target": "AmazonSSM.SendCommand"}, "body": "{}"}"#,
        );
        assert_eq!(
            parse_recorded_actions(recording),
            vec![
                "DescribeInstances",
                "CreateSnapshots",
                "ListChangedBlocks",
                "GetSnapshotBlock",
                "SendCommand"
            ]
        );
    }

    #[test]
    fn a_missing_server_names_the_install_command() {
        let message = resolve_moto_server(Some(PathBuf::from("/nonexistent/moto_server")))
            .expect_err("a missing executable is an error")
            .to_string();
        assert!(message.contains("/nonexistent/moto_server"), "{message}");
        assert!(message.contains("cargo xtask tools"), "{message}");
    }
}
