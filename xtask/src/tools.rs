//! The project's Python tool environment under target/tools/venv, created on first use.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The pinned requirements, relative to the workspace root.
const REQUIREMENTS: &str = "tools/requirements.txt";
/// A copy of the requirements the environment was built from, to tell when it is stale.
const STAMP: &str = ".smartvault-requirements.txt";

pub fn run() -> Result<ExitCode> {
    let venv = ensure()?;
    eprintln!("tools ready in {}", venv.display());
    Ok(ExitCode::SUCCESS)
}

/// The virtual environment's directory.
pub fn venv_dir() -> PathBuf {
    emulator::tools_dir().join("venv")
}

/// An executable installed in the tool environment.
pub fn bin(name: &str) -> PathBuf {
    venv_dir().join("bin").join(name)
}

/// Creates or updates the tool environment when the pinned requirements changed; otherwise
/// reuses it as it is. Returns its directory.
pub fn ensure() -> Result<PathBuf> {
    let root = emulator::workspace_root();
    let requirements_path = root.join(REQUIREMENTS);
    let requirements = fs::read_to_string(&requirements_path)
        .with_context(|| format!("failed to read `{}`", requirements_path.display()))?;
    let venv = venv_dir();
    let stamp = venv.join(STAMP);
    if fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str())
        && bin("python").exists()
    {
        return Ok(venv);
    }
    eprintln!(
        "installing the Python tools into {} (first use: about half a minute)",
        venv.display()
    );
    if !bin("python").exists() {
        create_venv(&venv)?;
    }
    let status = Command::new(bin("pip"))
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

fn create_venv(venv: &Path) -> Result<()> {
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .context("failed to run `python3`: install Python 3 (3.9 or newer) with its venv module")?;
    if !status.success() {
        bail!(
            "`python3 -m venv {}` failed ({status}); on Debian or Ubuntu, `apt-get install python3-venv` provides the venv module",
            venv.display()
        );
    }
    Ok(())
}
