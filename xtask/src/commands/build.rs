//! `cargo xtask build`: the function for Lambda, zipped.

use crate::build::architecture::Architecture;
use anyhow::Result;
use std::process::ExitCode;

/// Compile the function for Lambda (glibc 2.34) into target/lambda/<arch>/bootstrap.
#[derive(Debug, clap::Args)]
pub struct Build {
    #[arg(long, value_enum, default_value = "x86_64")]
    arch: Architecture,
}

impl Build {
    pub fn run(self) -> Result<ExitCode> {
        let binary = crate::build::build(self.arch)?;
        println!(
            "{}",
            crate::build::package::package(&binary, crate::build::package::Compression::Smallest)?
        );
        Ok(ExitCode::SUCCESS)
    }
}
