//! Whether the Lambda zip is the same bytes from any checkout: the zip built here, and the zip
//! built from a fresh clone of the same commit at another path (its own `target/`), compared.

use crate::build::architecture::Architecture;
use crate::build::package::{sha256_hex, zip_bootstrap};
use crate::user_error::UserError;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The two builds of one commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reproduced {
    pub commit: String,
    pub here: Build,
    pub elsewhere: Build,
}

/// One checkout's zip.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Build {
    pub checkout: PathBuf,
    pub sha256: String,
    pub size: usize,
}

impl Reproduced {
    pub fn same(&self) -> bool {
        self.here.sha256 == self.elsewhere.sha256
    }
}

/// Builds the zip from this checkout and from a clone of its commit at `elsewhere`, and hashes
/// both. Refuses (exit 2) a checkout with uncommitted changes: the clone would build other
/// source.
pub fn reproduce(arch: Architecture, elsewhere: &Path) -> Result<Reproduced> {
    let root = crate::paths::workspace_root();
    let changed = git(&root, &["status", "--porcelain", "--untracked-files=no"])?;
    if !changed.trim().is_empty() {
        bail!(UserError(format!(
            "this checkout has uncommitted changes ({}); commit or stash them first: the other \
             checkout is a clone of the commit",
            changed.lines().next().unwrap_or_default().trim()
        )));
    }
    let commit = git(&root, &["rev-parse", "HEAD"])?.trim().to_owned();
    let here = build(&root, arch)?;
    if elsewhere.exists() {
        std::fs::remove_dir_all(elsewhere)
            .with_context(|| format!("failed to remove `{}`", elsewhere.display()))?;
    }
    let clone = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(&root)
        .arg(elsewhere)
        .status()
        .context("failed to run git clone")?;
    if !clone.success() {
        bail!(
            "git clone of {} into {} failed",
            root.display(),
            elsewhere.display()
        );
    }
    git(elsewhere, &["checkout", "--quiet", &commit])?;
    let other = build(elsewhere, arch)?;
    Ok(Reproduced {
        commit,
        here,
        elsewhere: other,
    })
}

fn build(checkout: &Path, arch: Architecture) -> Result<Build> {
    let (_, binary) = crate::build::build_in(checkout, arch)?;
    let zipped = zip_bootstrap(&binary, crate::build::package::Compression::Smallest)?;
    Ok(Build {
        checkout: checkout.to_path_buf(),
        sha256: sha256_hex(&zipped),
        size: zipped.len(),
    })
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("failed to run git")?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
