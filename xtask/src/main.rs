//! `cargo xtask`: SmartVault's developer and deployment commands, one module per subcommand.

mod emulator_cmd;
mod test;
mod tools;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "SmartVault: build, test and deploy the EC2 backup function"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the project's Python tools (the AWS emulator, linters) into target/tools/venv.
    Tools,
    /// Run every check: rustfmt, clippy and all tests against the local AWS emulator.
    Test,
    /// Start the local AWS emulator in the foreground and print the environment to reach it.
    Emulator,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tools => tools::run(),
        Command::Test => test::run(),
        Command::Emulator => emulator_cmd::run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
