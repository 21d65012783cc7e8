//! `cargo xtask bench`: SmartVault against the seed on the emulator; writes docs/benchmarks.md.

use anyhow::Result;
use std::process::ExitCode;

/// Measure SmartVault against the seed's Python Lambda on the emulator; writes docs/benchmarks.md.
#[derive(Debug, clap::Args)]
pub struct Bench {
    #[command(flatten)]
    options: crate::bench::Options,
}

impl Bench {
    pub fn run(self) -> Result<ExitCode> {
        crate::bench::run(&self.options)?;
        Ok(ExitCode::SUCCESS)
    }
}
