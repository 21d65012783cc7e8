//! `cargo xtask logs` end to end: events written to the function's log group in the emulator
//! come back as readable lines or raw JSON, for a window, one request, or followed.

use crate::common::{scratch, xtask};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use emulator::Emulator;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GROUP: &str = "/aws/lambda/smartvault-local";

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn put(logs: &aws_sdk_cloudwatchlogs::Client, stream: &str, events: &[(i64, String)]) {
    logs.put_log_events()
        .log_group_name(GROUP)
        .log_stream_name(stream)
        .set_log_events(Some(
            events
                .iter()
                .map(|(at, message)| {
                    InputLogEvent::builder()
                        .timestamp(*at)
                        .message(message)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn logs_are_shown_readable_or_raw_for_a_window_a_request_or_as_they_come() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let sdk = emulator.sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.create_log_group()
        .log_group_name(GROUP)
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name(GROUP)
        .log_stream_name("2026/11/27/[$LATEST]a")
        .send()
        .await
        .unwrap();
    let now = now_ms();
    put(
        &logs,
        "2026/11/27/[$LATEST]a",
        &[
            // Two days old: outside the default hour.
            (
                now - 2 * 86_400_000,
                r#"{"level":"INFO","message":"plan ready","creates":9,"requestId":"req-old"}"#
                    .to_owned(),
            ),
            (
                now - 60_000,
                r#"{"level":"INFO","message":"plan ready","creates":3,"requestId":"req-a"}"#
                    .to_owned(),
            ),
            (
                now - 59_000,
                r#"{"time":"2026-11-27T01:00:00.000Z","type":"platform.report","record":{"requestId":"req-a","status":"success"}}"#
                    .to_owned(),
            ),
            (
                now - 30_000,
                r#"{"level":"ERROR","message":"snapshot failed","code":"IncorrectState","requestId":"req-b"}"#
                    .to_owned(),
            ),
        ],
    )
    .await;
    let dir = scratch("logs");
    let file = dir.join("smartvault.yaml");
    std::fs::write(
        &file,
        "environments:\n  local:\n    region: us-east-1\n    notification_emails: [a@b.io]\n  other:\n    region: us-east-1\n    notification_emails: [a@b.io]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["logs", "--env", "local", "--config", config];
        args.extend(extra);
        let output = xtask(&emulator, &args);
        assert!(output.status.success(), "{:?}", output.status);
        String::from_utf8(output.stdout).unwrap()
    };

    let text = run(&[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with("INFO  plan ready  creates=3"), "{text}");
    assert!(
        lines[1].ends_with("REPORT requestId=req-a status=success"),
        "{text}"
    );
    assert!(
        lines[2].ends_with("ERROR snapshot failed  code=IncorrectState"),
        "{text}"
    );
    assert!(
        lines[0].starts_with("20"),
        "each line starts with its time: {text}"
    );
    assert!(run(&["--since", "3d"]).contains("creates=9"));

    let one = run(&["--request", "req-a"]);
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(
        !one.contains("req-b") && !one.contains("snapshot failed"),
        "{one}"
    );

    let raw = run(&["--request", "req-b", "--output", "json"]);
    let event: serde_json::Value = serde_json::from_str(raw.trim()).unwrap();
    assert_eq!(event["log_stream"], "2026/11/27/[$LATEST]a");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains(r#""requestId":"req-b""#)
    );
    assert!(event["timestamp"].is_i64() && event["event_id"].is_string());

    // Following: what comes after the start is printed as it arrives, each event once.
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(["logs", "--env", "local", "--config", config, "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    emulator.configure(&mut command);
    let mut child = command.spawn().unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
                let found = line.contains(needle);
                got.push(line);
                if found {
                    return got;
                }
            }
        }
        panic!("{needle:?} never came; got {got:?}");
    };
    let first = wait_for("snapshot failed");
    assert_eq!(first.len(), 3, "the window first: {first:?}");
    put(
        &logs,
        "2026/11/27/[$LATEST]a",
        &[(
            now_ms(),
            r#"{"level":"INFO","message":"run summary","created":3,"requestId":"req-c"}"#
                .to_owned(),
        )],
    )
    .await;
    let next = wait_for("run summary");
    assert_eq!(next.len(), 1, "only the new event, once: {next:?}");
    child.kill().unwrap();
    child.wait().unwrap();

    // An environment whose function never ran (or is not deployed) says so.
    let missing = xtask(&emulator, &["logs", "--env", "other", "--config", config]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains(
            "the log group /aws/lambda/smartvault-other does not exist: the environment is not \
             deployed in this region, or its function never ran"
        ),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
