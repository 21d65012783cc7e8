//! `cargo xtask tools`: installs the project's Python tools into target/tools.

use anyhow::Result;
use std::process::ExitCode;

/// Install the project's Python tools (the AWS emulator, linters, zig) into target/tools.
#[derive(Debug, clap::Args)]
pub struct Tools {}

impl Tools {
    pub fn run(self) -> Result<ExitCode> {
        for dir in crate::build::tools::ensure_all()? {
            eprintln!("tools ready in {}", dir.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
