//! The Linux freeze document SmartVault ships for application-consistent snapshots (the
//! `FreezeDocument` of templates/smartvault.yaml, issue 32), its script run for real under
//! bash with `fsfreeze` stubbed (freezing needs root and a loop device, which CI machines do
//! not give): it freezes and thaws what it should, its watchdog thaws a file system a lost
//! post stage left frozen and the post stage then says so, a failed freeze or hook leaves
//! nothing frozen; the document's own command runs each stage as Systems Manager would send
//! it; and shellcheck finds nothing in either.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A stand-in for util-linux `fsfreeze`: one file per frozen mount point under `$FAKE_FS`, the
/// kernel's answers for a second freeze (EBUSY) and a thaw of a thawed one (EINVAL), a
/// failing freeze of `$FAIL_ON`, and `$SLOW_FREEZE` seconds a freeze.
const STUB: &str = r#"#!/usr/bin/env bash
mode="$1"; point="$2"; mark="$FAKE_FS/$(echo "$point" | tr / _)"
echo "$mode $point" >>"$FAKE_FS/calls"
case "$mode" in
  -f) [ -n "${SLOW_FREEZE:-}" ] && sleep "$SLOW_FREEZE"
      if [ -n "${FAIL_ON:-}" ] && [ "$point" = "$FAIL_ON" ]; then
        echo "fsfreeze: $point: freeze failed: Operation not supported" >&2; exit 1; fi
      if [ -e "$mark" ]; then
        echo "fsfreeze: $point: freeze failed: Device or resource busy" >&2; exit 1; fi
      touch "$mark" ;;
  -u) if [ ! -e "$mark" ]; then
        echo "fsfreeze: $point: unfreeze failed: Invalid argument" >&2; exit 1; fi
      rm "$mark" ;;
esac
"#;

/// The document's command, as the template holds it.
fn document_command() -> String {
    let template: serde_norway::Value =
        serde_norway::from_str(&crate::stack::template::read_template("smartvault.yaml").unwrap())
            .unwrap();
    let content = &template["Resources"]["FreezeDocument"]["Properties"]["Content"];
    let commands = content["mainSteps"][0]["inputs"]["runCommand"]
        .as_sequence()
        .unwrap();
    assert_eq!(commands.len(), 1, "one command holds the whole stage");
    commands[0].as_str().unwrap().to_owned()
}

/// The script the document's command writes out (between its here-document's markers), in a
/// scratch file.
fn script() -> PathBuf {
    let command = document_command();
    let start = command
        .find("<<'SMARTVAULT_SCRIPT'\n")
        .expect("the command writes the script with a quoted here-document")
        + "<<'SMARTVAULT_SCRIPT'\n".len();
    let end = command[start..].find("\nSMARTVAULT_SCRIPT\n").unwrap() + start;
    let dir = crate::paths::test_scratch("freeze-script");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("freeze-{}.sh", std::process::id()));
    std::fs::write(&path, format!("{}\n", &command[start..end])).unwrap();
    path
}

/// A scratch machine: the stub, its state, the script's state and hooks directories.
struct Machine {
    dir: PathBuf,
}

impl Machine {
    fn new(name: &str) -> Machine {
        let dir = crate::paths::test_scratch(name);
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["fs", "run", "hooks/pre.d", "hooks/post.d"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let stub = dir.join("fsfreeze");
        std::fs::write(&stub, STUB).unwrap();
        executable(&stub);
        Machine { dir }
    }

    fn run(&self, stage: &str, extra: &[(&str, &str)]) -> Output {
        self.command(stage, extra).output().unwrap()
    }

    /// The script for `stage`, with the machine's stub and folders.
    fn command(&self, stage: &str, extra: &[(&str, &str)]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(script())
            .arg(stage)
            .env("FAKE_FS", self.dir.join("fs"))
            .env("SMARTVAULT_FSFREEZE", self.dir.join("fsfreeze"))
            .env("SMARTVAULT_STATE_DIR", self.dir.join("run"))
            .env("SMARTVAULT_HOOKS_DIR", self.dir.join("hooks"))
            .env("SMARTVAULT_MOUNTS", "/data /logs")
            .env("SMARTVAULT_TIMEOUT", "30");
        for (k, v) in extra {
            command.env(k, v);
        }
        command
    }

    /// The mount points frozen now.
    fn frozen(&self) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(self.dir.join("fs"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name != "calls")
            .map(|name| name.replace('_', "/"))
            .collect();
        found.sort();
        found
    }

    fn hook(&self, stage: &str, name: &str, body: &str) {
        let path = self.dir.join("hooks").join(format!("{stage}.d")).join(name);
        std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
        executable(&path);
    }
}

fn executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn pre_freezes_post_thaws_and_the_hooks_run_around_them() {
    let m = Machine::new("freeze-ok");
    let order = m.dir.join("order");
    let record = |what: &str| format!("echo {what} >>{}", order.display());
    m.hook("pre", "10-flush", &record("flush"));
    m.hook("post", "10-resume", &record("resume"));
    let pre = m.run("pre", &[]);
    assert!(pre.status.success(), "{pre:?}");
    assert_eq!(m.frozen(), ["/data", "/logs"]);
    let post = m.run("post", &[]);
    assert!(post.status.success(), "{post:?}");
    assert!(m.frozen().is_empty());
    assert_eq!(
        std::fs::read_to_string(&order).unwrap(),
        "flush\nresume\n",
        "the pre hook before the freeze, the post hook after the thaw"
    );
    // The watchdog is gone with the post stage, and a second post is harmless.
    assert!(!m.dir.join("run/watchdog.pid").exists());
    assert!(m.run("post", &[]).status.success());
}

#[test]
fn the_watchdog_thaws_what_a_lost_post_stage_left_frozen() {
    let m = Machine::new("freeze-watchdog");
    let pre = m.run("pre", &[("SMARTVAULT_TIMEOUT", "1")]);
    assert!(pre.status.success(), "{pre:?}");
    assert_eq!(m.frozen(), ["/data", "/logs"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m.frozen().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(m.frozen().is_empty(), "the watchdog thawed both");
    // The post stage that comes late finds them thawed, and fails: the snapshots may have
    // been taken after the thaw.
    let post = m.run("post", &[]);
    assert_eq!(post.status.code(), Some(1), "{post:?}");
    assert!(
        String::from_utf8_lossy(&post.stderr).contains("the watchdog thawed after 1s"),
        "{post:?}"
    );
    assert!(m.frozen().is_empty());
    // ...once: the next pre and post stages are a clean pair again.
    assert!(m.run("pre", &[]).status.success());
    assert!(m.run("post", &[]).status.success());
}

/// A post stage that comes while a slow pre stage is still freezing (the SSM Agent runs
/// commands side by side) waits for it, then thaws everything: nothing stays frozen, and the
/// watchdog is gone.
#[test]
fn a_post_stage_that_comes_during_a_slow_pre_stage_waits_and_thaws_everything() {
    let m = Machine::new("freeze-overlap");
    let mut pre = m.command("pre", &[("SLOW_FREEZE", "1")]).spawn().unwrap();
    // The pre stage is inside its first freeze (a second per mount point).
    let started = Instant::now();
    while !m.dir.join("run/frozen").exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let post = m.run("post", &[]);
    assert!(post.status.success(), "{post:?}");
    assert!(pre.wait().unwrap().success());
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the post stage waited for both freezes"
    );
    assert!(m.frozen().is_empty(), "{:?} left frozen", m.frozen());
    assert!(!m.dir.join("run/watchdog.pid").exists());
    let calls = std::fs::read_to_string(m.dir.join("fs/calls")).unwrap();
    assert_eq!(
        calls, "-f /data\n-f /logs\n-u /data\n-u /logs\n",
        "every freeze before any thaw"
    );
}

/// The document's command, as Systems Manager runs it for each stage (its `{{ command }}`
/// replaced): it writes the script where the watchdog finds it, and runs the stage.
#[test]
fn the_documents_command_runs_each_stage_it_is_sent() {
    let m = Machine::new("freeze-document");
    let command = document_command();
    assert!(command.contains("stage='{{ command }}'"), "{command}");
    let run = |stage: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(command.replace("{{ command }}", stage))
            .env("FAKE_FS", m.dir.join("fs"))
            .env("SMARTVAULT_FSFREEZE", m.dir.join("fsfreeze"))
            .env("SMARTVAULT_STATE_DIR", m.dir.join("run"))
            .env("SMARTVAULT_HOOKS_DIR", m.dir.join("hooks"))
            .env("SMARTVAULT_MOUNTS", "/data")
            .output()
            .unwrap()
    };
    let check = run("dry-run");
    assert!(check.status.success(), "{check:?}");
    assert_eq!(String::from_utf8_lossy(&check.stdout), "/data\n");
    assert!(m.frozen().is_empty(), "a dry run freezes nothing");
    assert!(run("pre-script").status.success());
    assert_eq!(m.frozen(), ["/data"]);
    assert!(m.dir.join("run/freeze.sh").exists(), "the watchdog's copy");
    assert!(run("post-script").status.success());
    assert!(m.frozen().is_empty());
}

#[test]
fn a_failed_freeze_or_pre_hook_leaves_nothing_frozen() {
    let m = Machine::new("freeze-fails");
    let pre = m.run("pre", &[("FAIL_ON", "/logs")]);
    assert_eq!(pre.status.code(), Some(1), "{pre:?}");
    assert!(m.frozen().is_empty(), "/data thawed again");
    assert!(String::from_utf8_lossy(&pre.stderr).contains("could not freeze /logs"));
    assert!(!m.dir.join("run/watchdog.pid").exists());

    let m = Machine::new("freeze-hook-fails");
    m.hook("pre", "10-flush", "exit 3");
    let pre = m.run("pre", &[]);
    assert_eq!(pre.status.code(), Some(1), "{pre:?}");
    assert!(m.frozen().is_empty(), "nothing frozen after a failed hook");
    let calls = std::fs::read_to_string(m.dir.join("fs/calls")).unwrap_or_default();
    assert!(!calls.contains("-f"), "{calls}");

    let usage = m.run("thaw", &[]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn the_freeze_script_and_the_documents_command_are_shellcheck_clean() {
    let command = crate::paths::test_scratch("freeze-script").join("command.sh");
    std::fs::create_dir_all(command.parent().unwrap()).unwrap();
    std::fs::write(&command, document_command()).unwrap();
    for file in [script(), command] {
        let output = Command::new(crate::build::tools::bin("shellcheck"))
            .arg("--severity=style")
            .arg(&file)
            .output()
            .expect("shellcheck from the tool environment (cargo xtask tools)");
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
