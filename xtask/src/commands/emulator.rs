//! `cargo xtask emulator`: a local AWS emulator in the foreground for hands-on work.

use anyhow::{Context, Result};
use std::process::ExitCode;

/// Start the local AWS emulator in the foreground and print the environment to reach it.
#[derive(Debug, clap::Args)]
pub struct EmulatorCmd {}

impl EmulatorCmd {
    pub fn run(self) -> Result<ExitCode> {
        run()
    }
}

fn run() -> Result<ExitCode> {
    crate::build::tools::ensure()?;
    let emulator = emulator::Emulator::start().context("failed to start the AWS emulator")?;
    eprintln!(
        "the AWS emulator is listening on {}; in another shell:",
        emulator.endpoint()
    );
    for (key, value) in emulator.env() {
        println!("export {key}={value}");
    }
    eprintln!("press Ctrl-C to stop it");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime
        .block_on(tokio::signal::ctrl_c())
        .context("failed to wait for Ctrl-C")?;
    drop(emulator);
    eprintln!("emulator stopped");
    Ok(ExitCode::SUCCESS)
}
