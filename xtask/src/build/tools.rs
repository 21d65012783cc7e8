//! The project's Python tool environments under target/tools, created on first use and
//! reused after: `venv` (the emulator, cfn-lint, parliament, zig, the AWS CLI) and
//! `checkov-venv` (checkov, whose pins conflict with the emulator's).

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// One virtual environment and the pinned requirements it is built from.
pub struct Venv {
    name: &'static str,
    requirements: &'static str,
}

/// The main environment.
pub const MAIN: Venv = Venv {
    name: "venv",
    requirements: "tools/requirements.txt",
};

/// checkov, alone: it pins boto3 1.35, which would downgrade the emulator's.
pub const CHECKOV: Venv = Venv {
    name: "checkov-venv",
    requirements: "tools/requirements-checkov.txt",
};

/// A copy of the requirements an environment was built from, to tell when it is stale.
const STAMP: &str = ".smartvault-requirements.txt";

/// Creates or updates every environment; returns their directories.
pub fn ensure_all() -> Result<Vec<PathBuf>> {
    [&MAIN, &CHECKOV].iter().map(|venv| venv.ensure()).collect()
}

/// An executable installed in the main environment.
pub fn bin(name: &str) -> PathBuf {
    MAIN.bin(name)
}

/// Creates or updates the main environment; see [`Venv::ensure`].
pub fn ensure() -> Result<PathBuf> {
    MAIN.ensure()
}

impl Venv {
    pub fn dir(&self) -> PathBuf {
        crate::paths::tools().join(self.name)
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir().join("bin").join(name)
    }

    /// Creates or updates the environment when its pinned requirements changed; otherwise
    /// reuses it as it is. Returns its directory.
    pub fn ensure(&self) -> Result<PathBuf> {
        let root = crate::paths::workspace_root();
        let requirements_path = root.join(self.requirements);
        let requirements = fs::read_to_string(&requirements_path)
            .with_context(|| format!("failed to read `{}`", requirements_path.display()))?;
        let venv = self.dir();
        let stamp = venv.join(STAMP);
        if fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str())
            && self.bin("python").exists()
        {
            return Ok(venv);
        }
        eprintln!(
            "installing {} into {} (first use: about half a minute)",
            self.requirements,
            venv.display()
        );
        if !self.bin("python").exists() {
            self.create()?;
        }
        let status = Command::new(self.bin("pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "--requirement",
            ])
            .arg(&requirements_path)
            .status()
            .context("failed to run pip from the tool environment")?;
        if !status.success() {
            bail!(
                "pip could not install `{}` ({status}); check that PyPI is reachable, then run `cargo xtask tools` again",
                requirements_path.display()
            );
        }
        fs::write(&stamp, requirements)
            .with_context(|| format!("failed to write `{}`", stamp.display()))?;
        Ok(venv)
    }

    fn create(&self) -> Result<()> {
        let venv = self.dir();
        fs::create_dir_all(crate::paths::tools())
            .with_context(|| format!("failed to create `{}`", crate::paths::tools().display()))?;
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context(
                "failed to run `python3`: install Python 3 (3.9 or newer) with its venv module",
            )?;
        if !status.success() {
            bail!(
                "`python3 -m venv {}` failed ({status}); on Debian or Ubuntu, `apt-get install python3-venv` provides the venv module",
                venv.display()
            );
        }
        Ok(())
    }
}
