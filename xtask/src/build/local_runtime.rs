//! A local Lambda Runtime API: runs the real `bootstrap` as a child process, hands it one event
//! through `/runtime/invocation/next`, and collects its response, error or init error, with a
//! report line like Lambda's (duration, init duration, max memory used). The same server
//! answers Lambda's `Invoke` API for the function's own name (the function reaches it through
//! `AWS_ENDPOINT_URL_LAMBDA`): asynchronous invocations are queued and run one after another,
//! each in a fresh process with its own deadline, as the links of a long run.

use anyhow::{Context, Result, bail};
use emulator::loopback::{Message, Reading, Server};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const API: &str = "/2018-06-01/runtime";
/// Lambda's Invoke API path prefix: `POST /2015-03-31/functions/<name>/invocations`.
const INVOKE_API: &str = "/2015-03-31/functions/";
/// The most invocations one local run goes through (a runaway chain stops here).
const MAX_INVOCATIONS: usize = 200;

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", content = "body", rename_all = "snake_case")]
pub enum Ending {
    /// The handler's response.
    Response(serde_json::Value),
    /// The handler reported an error.
    Error(serde_json::Value),
    /// Initialisation failed, reported through `/runtime/init/error`.
    InitError(serde_json::Value),
    /// The process exited without reporting (Lambda's `Runtime.ExitError`).
    Exited(serde_json::Value),
    /// No answer before the timeout.
    Timeout,
}

/// One local invocation, with Lambda's report figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invocation {
    /// How many invocations the run took, this last one included: more than one when the
    /// function handed its run on by invoking itself.
    pub links: usize,
    pub request_id: String,
    pub ending: Ending,
    /// From process start to its first `next` request.
    pub init_ms: Option<f64>,
    /// From handing over the event to the response.
    pub duration_ms: Option<f64>,
    /// From process start to the response: a cold start, end to end.
    pub total_ms: f64,
    /// The process's peak resident memory (VmHWM), in MiB.
    pub max_memory_mib: Option<f64>,
}

impl Invocation {
    /// Lambda's REPORT line.
    pub fn report_line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"));
        format!(
            "REPORT RequestId: {}\tDuration: {}\tInit Duration: {}\tMax Memory Used: {}",
            self.request_id,
            ms(self.duration_ms),
            ms(self.init_ms),
            self.max_memory_mib
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.0} MB"))
        )
    }
}

#[derive(Default)]
struct State {
    /// The invocation being served: its id, its event and its deadline.
    current: Option<Current>,
    event_taken_at: Option<Instant>,
    first_next_at: Option<Instant>,
    ending: Option<(Ending, Instant)>,
    /// Asynchronous invocations the function made of itself, not yet run.
    queue: VecDeque<Vec<u8>>,
    /// Set when the run is over: a waiting `next` gives up.
    stopped: bool,
    /// The number of the invocation being served; another's connections get nothing.
    link: usize,
}

struct Current {
    request_id: String,
    event: Vec<u8>,
    deadline_ms: u128,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    function_name: String,
    function_arn: String,
}

impl Shared {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| anyhow::anyhow!("the Runtime API state was poisoned"))
    }
}

/// Stops the server's waiting threads when the run ends, however it ends.
struct Stop<'a>(&'a Shared);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.stopped = true;
        }
        self.0.changed.notify_all();
    }
}

/// Settings for one local run.
pub struct Run<'a> {
    pub binary: &'a Path,
    pub function_name: &'a str,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub region: &'a str,
    /// The account in the function's ARN (the caller's, from STS, against AWS).
    pub account_id: &'a str,
    /// The handler's own variables and the AWS endpoint and credentials.
    pub env: Vec<(String, String)>,
    pub event: &'a serde_json::Value,
    /// How the function's log lines are shown.
    pub logs: Logs,
}

/// How the function's log lines (its standard output, as in Lambda) reach our stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// As the function writes them: one JSON object per line.
    Raw,
    /// One readable line per event: level, message and fields, without the request id.
    Readable,
}

impl Logs {
    /// Readable lines for people; the raw JSON with `--output json`.
    pub fn for_output(output: crate::output::Output) -> Self {
        match output {
            crate::output::Output::Text => Logs::Readable,
            crate::output::Output::Json => Logs::Raw,
        }
    }
}

/// A readable log line leaves out a field longer than this (the whole report, say).
const LONGEST_SHOWN: usize = 160;

/// One of the function's log lines for people: `  INFO  message  key=value ...`. A line that
/// is not a JSON object is shown as it is; a CloudWatch metrics line by its figures.
pub fn readable(line: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return line.to_owned();
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if fields.contains_key("_aws") {
        let figures: Vec<String> = fields
            .iter()
            .filter(|(k, v)| *k != "_aws" && (v.is_number() || *k == "Deployment"))
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        return format!("  METRICS {}", figures.join(" "));
    }
    // Lambda's own records in the JSON log format: `platform.start`, `platform.report`, ...
    if let (Some(kind), Some(serde_json::Value::Object(record))) = (
        fields
            .get("type")
            .and_then(|t| t.as_str())
            .and_then(|t| t.strip_prefix("platform.")),
        fields.get("record"),
    ) {
        let details: Vec<String> = record
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        return format!("  {} {}", kind.to_uppercase(), details.join(" "));
    }
    let level = fields.get("level").map(text).unwrap_or_default();
    let message = fields.get("message").map(text).unwrap_or_default();
    let rest: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "level" | "message" | "requestId"))
        .map(|(k, v)| {
            let value = text(v);
            if value.chars().count() > LONGEST_SHOWN {
                format!("{k}=({} bytes; --output json shows it)", value.len())
            } else {
                format!("{k}={value}")
            }
        })
        .collect();
    let mut shown = format!("  {level:<5} {message}");
    if !rest.is_empty() {
        shown.push_str("  ");
        shown.push_str(&rest.join(" "));
    }
    shown
}

/// Runs the binary under the local Runtime API with `run.event`, then with each event it sent
/// itself asynchronously, one after another; returns the last invocation.
pub fn invoke(run: &Run<'_>) -> Result<Invocation> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        function_name: run.function_name.to_owned(),
        function_arn: format!(
            "arn:aws:lambda:{}:{}:function:{}",
            run.region, run.account_id, run.function_name
        ),
    });
    let _stop = Stop(&shared);
    let mut event = serde_json::to_vec(run.event)?;
    for links in 1..=MAX_INVOCATIONS {
        // Each process gets its own server on its own port: a `next` that an earlier, killed
        // process sent can never take a later invocation's event. The server is dropped (its
        // threads ended) before the next link starts.
        shared.lock()?.link = links;
        let server = {
            let shared = Arc::clone(&shared);
            Server::start(move |stream| {
                let _ = serve(stream, &shared, links);
            })
            .context("failed to open a loopback port for the Runtime API")?
        };
        let invocation = invoke_once(run, &shared, &server.address(), event, links);
        // The link is over: a `next` still waiting gives up, then the server stops.
        shared.lock()?.link = 0;
        shared.changed.notify_all();
        drop(server);
        let invocation = invocation?;
        let next = shared.lock()?.queue.pop_front();
        match next {
            Some(queued) if invocation.ending != Ending::Timeout => {
                eprintln!("{}", invocation.report_line());
                event = queued;
            }
            _ => return Ok(invocation),
        }
    }
    bail!("the function invoked itself more than {MAX_INVOCATIONS} times in one local run")
}

/// One invocation in a fresh process: the event, the deadline, the ending and the figures.
fn invoke_once(
    run: &Run<'_>,
    shared: &Shared,
    address: &str,
    event: Vec<u8>,
    links: usize,
) -> Result<Invocation> {
    let request_id = format!("{:032x}", rand_id());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    {
        let mut state = shared.lock()?;
        state.current = Some(Current {
            request_id: request_id.clone(),
            event,
            deadline_ms: now_ms + run.timeout.as_millis(),
        });
        state.event_taken_at = None;
        state.first_next_at = None;
        state.ending = None;
    }
    let started = Instant::now();
    let mut child = spawn(run, address)?;
    let pid = child.id();
    let logs = child.stdout.take().map(|stdout| {
        let logs = run.logs;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match logs {
                    Logs::Raw => eprintln!("{line}"),
                    Logs::Readable => eprintln!("{}", readable(&line)),
                }
            }
        })
    });
    let (ending, ended_at, max_memory_mib) = wait(shared, &mut child, run.timeout, pid);
    let _ = child.kill();
    let status = child.wait().ok();
    // The pipe closed with the process: the log thread has printed everything.
    if let Some(logs) = logs {
        let _ = logs.join();
    }
    let state = shared.lock()?;
    let ending = match ending {
        Some(ending) => ending,
        None if status.is_some_and(|s| s.code().is_some()) => Ending::Exited(serde_json::json!({
            "errorType": "Runtime.ExitError",
            "errorMessage": format!(
                "RequestId: {request_id} Error: Runtime exited with error: {}",
                status.map(|s| s.to_string()).unwrap_or_default()
            ),
        })),
        None => Ending::Timeout,
    };
    Ok(Invocation {
        links,
        request_id,
        ending,
        init_ms: state
            .first_next_at
            .map(|t| (t - started).as_secs_f64() * 1000.0),
        duration_ms: state
            .event_taken_at
            .zip(ended_at)
            .map(|(taken, ended)| (ended - taken).as_secs_f64() * 1000.0),
        total_ms: (ended_at.unwrap_or_else(Instant::now) - started).as_secs_f64() * 1000.0,
        max_memory_mib,
    })
}

fn rand_id() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    nanos ^ (u128::from(std::process::id()) << 64)
}

fn spawn(run: &Run<'_>, runtime_api: &str) -> Result<Child> {
    let mut command = Command::new(run.binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", run.function_name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", run.memory_mb.to_string())
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", run.function_name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local/[$LATEST]local")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env("AWS_REGION", run.region)
        // The function's Invoke calls (to itself) come to this server.
        .env("AWS_ENDPOINT_URL_LAMBDA", format!("http://{runtime_api}"))
        .env("AWS_DEFAULT_REGION", run.region)
        .env(
            "LAMBDA_TASK_ROOT",
            run.binary.parent().unwrap_or(Path::new(".")),
        )
        .env("TZ", ":UTC")
        .envs(run.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        // The function's output is its log, as in Lambda: it goes to our stderr (see
        // `Logs`), keeping our stdout for results (`--output json`).
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
        .spawn()
        .with_context(|| format!("failed to start `{}`", run.binary.display()))
}

/// Waits for an ending, the process's exit, or the timeout; samples peak memory before the end.
fn wait(
    shared: &Shared,
    child: &mut Child,
    timeout: Duration,
    pid: u32,
) -> (Option<Ending>, Option<Instant>, Option<f64>) {
    let deadline = Instant::now() + timeout;
    let mut peak = None;
    loop {
        peak = peak_memory_mib(pid).or(peak);
        if let Ok(state) = shared.state.lock()
            && let Some((ending, at)) = &state.ending
        {
            return (
                Some(ending.clone()),
                Some(*at),
                peak_memory_mib(pid).or(peak),
            );
        }
        if let Ok(Some(_)) = child.try_wait() {
            // It may have reported just before exiting.
            let state = shared.state.lock().ok();
            let ended = state.as_ref().and_then(|s| s.ending.clone());
            return (
                ended.as_ref().map(|(e, _)| e.clone()),
                ended.map(|(_, t)| t),
                peak,
            );
        }
        if Instant::now() > deadline {
            return (None, None, peak);
        }
        if let Ok(state) = shared.state.lock() {
            let _ = shared
                .changed
                .wait_timeout(state, Duration::from_millis(20));
        }
    }
}

/// VmHWM from /proc: the process's peak resident set, as Lambda's "Max Memory Used".
fn peak_memory_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<()> {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/json".to_owned()));
    Message::response(status, &headers, body).write_to(stream)?;
    Ok(())
}

fn serve(stream: TcpStream, shared: &Shared, link: usize) -> Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = Message::read(&mut reader, Reading::Request)? {
        if let Some(function) = request
            .path()
            .strip_prefix(INVOKE_API)
            .and_then(|rest| rest.split('/').next())
        {
            invoke_api(&mut writer, shared, function, &request)?;
            continue;
        }
        let path = request
            .path()
            .strip_prefix(API)
            .unwrap_or(request.path())
            .to_owned();
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null);
        match (request.method(), path.as_str()) {
            ("GET", "/invocation/next") => {
                let handed = {
                    let mut state = shared.lock()?;
                    if state.link != link {
                        // A process of an earlier invocation, already stopped.
                        return Ok(());
                    }
                    state.first_next_at.get_or_insert_with(Instant::now);
                    if state.event_taken_at.is_none() {
                        state.event_taken_at = Some(Instant::now());
                        state
                            .current
                            .as_ref()
                            .map(|c| (c.request_id.clone(), c.event.clone(), c.deadline_ms))
                    } else {
                        None
                    }
                };
                let Some((request_id, event, deadline_ms)) = handed else {
                    // One event per process: a later `next` waits until the run stops (the
                    // process is killed first).
                    let mut state = shared.lock()?;
                    while !state.stopped && state.link == link {
                        state = shared
                            .changed
                            .wait_timeout(state, Duration::from_millis(200))
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .0;
                    }
                    return Ok(());
                };
                let headers = [
                    ("Lambda-Runtime-Aws-Request-Id", request_id.clone()),
                    ("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        shared.function_arn.clone(),
                    ),
                    (
                        "Lambda-Runtime-Trace-Id",
                        format!("Root=1-00000000-{}", &request_id[..24]),
                    ),
                ];
                respond(&mut writer, "200 OK", &headers, &event)?;
            }
            ("POST", "/init/error") => {
                finish(shared, link, Ending::InitError(body));
                respond(&mut writer, "202 Accepted", &[], b"{\"status\":\"OK\"}")?;
            }
            ("POST", p) if p.ends_with("/response") => {
                finish(shared, link, Ending::Response(body));
                respond(&mut writer, "202 Accepted", &[], b"{\"status\":\"OK\"}")?;
            }
            ("POST", p) if p.ends_with("/error") => {
                finish(shared, link, Ending::Error(body));
                respond(&mut writer, "202 Accepted", &[], b"{\"status\":\"OK\"}")?;
            }
            _ => respond(
                &mut writer,
                "404 Not Found",
                &[],
                b"{\"errorMessage\":\"unknown Runtime API path\"}",
            )?,
        }
    }
    Ok(())
}

/// Lambda's `Invoke` for this function: an asynchronous invocation (`X-Amz-Invocation-Type:
/// Event`) is queued and answered 202, as Lambda does; anything else is refused.
fn invoke_api(
    writer: &mut TcpStream,
    shared: &Shared,
    function: &str,
    request: &Message,
) -> Result<()> {
    let asynchronous = request
        .header("x-amz-invocation-type")
        .is_some_and(|t| t == "Event");
    if request.method() != "POST" || function != shared.function_name || !asynchronous {
        return respond(
            writer,
            "400 Bad Request",
            &[(
                "X-Amzn-ErrorType",
                "InvalidRequestContentException".to_owned(),
            )],
            format!(
                "{{\"message\":\"the local runtime takes only asynchronous invocations of {}\"}}",
                shared.function_name
            )
            .as_bytes(),
        );
    }
    shared.lock()?.queue.push_back(request.body.clone());
    respond(writer, "202 Accepted", &[], b"")
}

fn finish(shared: &Shared, link: usize, ending: Ending) {
    if let Ok(mut state) = shared.state.lock()
        && state.link == link
    {
        state.ending.get_or_insert((ending, Instant::now()));
    }
    shared.changed.notify_all();
}

/// Fails with the function's error when the invocation did not succeed.
pub fn ensure_success(invocation: &Invocation) -> Result<()> {
    match &invocation.ending {
        Ending::Response(_) => Ok(()),
        Ending::Error(e) | Ending::InitError(e) | Ending::Exited(e) => bail!(
            "the function failed: {}: {}",
            e["errorType"].as_str().unwrap_or("Unknown"),
            e["errorMessage"].as_str().unwrap_or_default()
        ),
        Ending::Timeout => bail!("the function did not answer in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_bootstrap(env: Vec<(String, String)>, event: &serde_json::Value) -> Invocation {
        let binary = crate::workflows::invoke::host_bootstrap().unwrap();
        invoke(&Run {
            binary: &binary,
            function_name: "smartvault-test",
            memory_mb: 128,
            timeout: Duration::from_secs(60),
            region: "us-east-1",
            account_id: "123456789012",
            env,
            event,
            logs: Logs::Raw,
        })
        .unwrap()
    }

    #[test]
    fn log_lines_read_as_level_message_and_fields() {
        assert_eq!(
            readable(
                r#"{"level":"INFO","message":"snapshot created","instance_id":"i-1","volume_id":"vol-1","requestId":"abc"}"#
            ),
            "  INFO  snapshot created  instance_id=i-1 volume_id=vol-1"
        );
        assert_eq!(
            readable(r#"{"level":"WARN","message":"expired snapshot in use, kept"}"#),
            "  WARN  expired snapshot in use, kept"
        );
        let metrics = readable(
            r#"{"Deployment":"d","Failures":0,"SnapshotsCreated":6,"_aws":{"Timestamp":1}}"#,
        );
        assert_eq!(
            metrics,
            "  METRICS Deployment=d Failures=0 SnapshotsCreated=6"
        );
        assert_eq!(readable("not json at all"), "not json at all");
        let report = format!(
            r#"{{"level":"INFO","message":"run summary","created":6,"report":"{}"}}"#,
            "x".repeat(500)
        );
        assert_eq!(
            readable(&report),
            "  INFO  run summary  created=6 report=(500 bytes; --output json shows it)"
        );
        // Lambda's own records, as its JSON log format writes them to CloudWatch Logs.
        assert_eq!(
            readable(
                r#"{"time":"2026-11-27T01:00:00.000Z","type":"platform.report","record":{"requestId":"r-1","status":"success"}}"#
            ),
            "  REPORT requestId=r-1 status=success"
        );
    }

    #[test]
    fn an_init_failure_is_reported_as_lambda_would_show_it() {
        // DEPLOYMENT is set, SNS_TOPIC_ARN is not: the function must refuse to start.
        let invocation = run_bootstrap(
            vec![("DEPLOYMENT".into(), "smartvault-test".into())],
            &serde_json::json!({"action": "manual-trigger"}),
        );
        let Ending::InitError(error) = &invocation.ending else {
            panic!("expected an init error, got {:?}", invocation.ending);
        };
        assert_eq!(error["errorType"], "SmartVault.InvalidConfiguration");
        assert!(
            error["errorMessage"]
                .as_str()
                .unwrap()
                .starts_with("SNS_TOPIC_ARN is not set"),
            "{error}"
        );
        let message = ensure_success(&invocation).unwrap_err().to_string();
        assert!(
            message.contains("SmartVault.InvalidConfiguration: SNS_TOPIC_ARN is not set"),
            "{message}"
        );
        assert!(invocation.report_line().starts_with("REPORT RequestId: "));
    }

    #[test]
    fn a_refused_event_comes_back_as_the_functions_error() {
        let emulator = emulator::Emulator::start().unwrap_or_else(|e| panic!("{e}"));
        let mut env: Vec<(String, String)> = emulator
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.push((
            "SNS_TOPIC_ARN".into(),
            "arn:aws:sns:us-east-1:123456789012:t".into(),
        ));
        env.push(("DEPLOYMENT".into(), "smartvault-test".into()));
        let invocation = run_bootstrap(env, &serde_json::json!({"action": "restore"}));
        let Ending::Error(error) = &invocation.ending else {
            panic!("expected the handler's error, got {:?}", invocation.ending);
        };
        assert_eq!(error["errorType"], "SmartVault.InvalidEvent");
        assert!(invocation.init_ms.is_some() && invocation.duration_ms.is_some());
        assert!(invocation.max_memory_mib.is_some_and(|m| m > 1.0));
    }
}
