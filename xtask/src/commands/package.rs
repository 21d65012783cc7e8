//! `cargo xtask package`: the built function as a reproducible zip.

use crate::build::architecture::Architecture;
use anyhow::Result;
use std::process::ExitCode;

/// Zip the built function into a reproducible bootstrap.zip and print its sha256.
#[derive(Debug, clap::Args)]
pub struct Package {
    #[arg(long, value_enum, default_value = "x86_64")]
    arch: Architecture,
}

impl Package {
    pub fn run(self) -> Result<ExitCode> {
        let binary = crate::build::output_path(self.arch);
        println!(
            "{}",
            crate::build::package::package(&binary, crate::build::package::Compression::Smallest)?
        );
        Ok(ExitCode::SUCCESS)
    }
}
