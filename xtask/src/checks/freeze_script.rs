//! The Linux freeze script SmartVault ships for application-consistent snapshots
//! (templates/ssm/linux-freeze.sh, issue 32), run for real under bash with `fsfreeze` stubbed
//! (freezing needs root and a loop device): it freezes and thaws what it should, its watchdog
//! thaws a file system a lost post stage left frozen, a failed freeze or hook leaves nothing
//! frozen; and shellcheck finds nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A stand-in for util-linux `fsfreeze`: one file per frozen mount point under `$FAKE_FS`, the
/// kernel's answers for a second freeze (EBUSY) and a thaw of a thawed one (EINVAL), and a
/// failing freeze of `$FAIL_ON`.
const STUB: &str = r#"#!/usr/bin/env bash
mode="$1"; point="$2"; mark="$FAKE_FS/$(echo "$point" | tr / _)"
echo "$mode $point" >>"$FAKE_FS/calls"
case "$mode" in
  -f) if [ -n "${FAIL_ON:-}" ] && [ "$point" = "$FAIL_ON" ]; then
        echo "fsfreeze: $point: freeze failed: Operation not supported" >&2; exit 1; fi
      if [ -e "$mark" ]; then
        echo "fsfreeze: $point: freeze failed: Device or resource busy" >&2; exit 1; fi
      touch "$mark" ;;
  -u) if [ ! -e "$mark" ]; then
        echo "fsfreeze: $point: unfreeze failed: Invalid argument" >&2; exit 1; fi
      rm "$mark" ;;
esac
"#;

fn script() -> PathBuf {
    crate::paths::workspace_root().join("templates/ssm/linux-freeze.sh")
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
        command.output().unwrap()
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
    // The post stage that comes late finds them thawed: not a failure.
    let post = m.run("post", &[]);
    assert!(post.status.success(), "{post:?}");
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
fn the_freeze_script_is_shellcheck_clean() {
    let output = Command::new(crate::build::tools::bin("shellcheck"))
        .arg("--severity=style")
        .arg(script())
        .output()
        .expect("shellcheck from the tool environment (cargo xtask tools)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
