//! `cargo xtask reproduce`: the Lambda zip built from this checkout and from a clone of its
//! commit at another path, compared by sha256 (exit 1 when they differ).

use crate::build::architecture::Architecture;
use crate::output::Output;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Build the zip here and in a fresh clone of HEAD at another path; exit 1 unless both are the
/// same bytes. Two full release builds: about fifteen minutes on two cores.
#[derive(Debug, clap::Args)]
pub struct Reproduce {
    #[arg(long, value_enum, default_value = "x86_64")]
    arch: Architecture,
    /// Where the second checkout goes (removed first, and after a match).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("smartvault-reproduce"))]
    elsewhere: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

impl Reproduce {
    pub fn run(self) -> Result<ExitCode> {
        let result = crate::build::reproduce::reproduce(self.arch, &self.elsewhere)?;
        let same = result.same();
        self.output.result(&result, |result| {
            println!(
                "commit {}\n{} {} bytes sha256 {}\n{} {} bytes sha256 {}\n{}",
                result.commit,
                result.here.checkout.display(),
                result.here.size,
                result.here.sha256,
                result.elsewhere.checkout.display(),
                result.elsewhere.size,
                result.elsewhere.sha256,
                if same {
                    "the same bytes from both checkouts"
                } else {
                    "DIFFERENT bytes: the build depends on where it ran"
                }
            );
        })?;
        if same {
            let _ = std::fs::remove_dir_all(&self.elsewhere);
            Ok(ExitCode::SUCCESS)
        } else {
            Ok(ExitCode::FAILURE)
        }
    }
}
