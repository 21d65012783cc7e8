//! `cargo xtask`: SmartVault's developer and deployment commands. This file is the dispatch
//! table: each subcommand's arguments and `run` live in `commands/`.

mod aws;
mod bench;
mod build;
#[cfg(test)]
mod checks;
mod commands;
mod config;
mod output;
mod paths;
mod restore;
mod stack;
mod user_error;
mod workflows;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "SmartVault: build, test and deploy the EC2 backup function"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the project's Python tools (the AWS emulator, linters, zig) into target/tools/venv.
    Tools(commands::tools::Tools),
    /// Run every check: rustfmt, clippy, template lint and all tests against the local emulator.
    Test(commands::test::Test),
    /// Start the local AWS emulator in the foreground and print the environment to reach it.
    Emulator(commands::emulator::EmulatorCmd),
    /// Measure SmartVault against the seed's Python Lambda on the emulator; writes docs/benchmarks.md.
    Bench(commands::bench::Bench),
    /// Compile the function for Lambda (glibc 2.34) into target/lambda/<arch>/bootstrap.
    Build(commands::build::Build),
    /// Zip the built function into a reproducible bootstrap.zip and print its sha256.
    Package(commands::package::Package),
    /// Build the zip here and from a clone of HEAD at another path; exit 1 unless the same bytes.
    Reproduce(commands::reproduce::Reproduce),
    /// Write the template, parameters and tags deploy would send to target/smartvault/<env>/.
    Render(commands::render::Render),
    /// Create or update the bootstrap stack (the shared artifact bucket) in one account and region.
    Bootstrap(commands::bootstrap::Bootstrap),
    /// Create or update an environment's stack through a change set.
    Deploy(commands::deploy::Deploy),
    /// The whole lifecycle on a local AWS emulator: deploy, back up a fleet, clean up, destroy.
    Demo(commands::demo::Demo),
    /// Invoke the deployed function once (or, with --local, run the real bootstrap here).
    Invoke(commands::invoke::Invoke),
    /// Deploy the artifact a healthy source environment runs to a target environment; no build.
    Promote(commands::promote::Promote),
    /// Remove an environment: stack, snapshots, leftover log group, artifacts.
    Destroy(commands::destroy::Destroy),
    /// Show an environment's stack state, artifact, schedule and snapshots.
    Status(commands::status::StatusCmd),
    /// List an environment's restore points: each instance's sets, volumes, copies, expiry.
    Snapshots(commands::snapshots::SnapshotsCmd),
    /// Bring an instance's volumes back from a restore point, optionally attached to a stopped instance.
    Restore(commands::restore::RestoreCmd),
    /// Show which instances are protected and when each was last backed up; exit 1 on --fail-on.
    Coverage(commands::coverage::CoverageCmd),
    /// Show what each instance's backups store and cost a month, and what other retention would.
    Cost(commands::cost::CostCmd),
    /// List the instances the ransomware tripwire flagged, with their clean restore point; --clear one once handled.
    Tripwire(commands::tripwire::TripwireCmd),
    /// Print the function's log events, readable or raw, since a time, for a request, or followed.
    Logs(commands::logs::LogsCmd),
    /// Detect changes made to the stack's resources outside CloudFormation; exit 1 when drifted.
    Drift(commands::drift::DriftCmd),
    /// Ask AWS, read-only, whether an environment's prerequisites hold before a deploy.
    Doctor(commands::doctor::DoctorCmd),
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Tools(cmd) => cmd.run(),
        Command::Test(cmd) => cmd.run(),
        Command::Emulator(cmd) => cmd.run(),
        Command::Bench(cmd) => cmd.run(),
        Command::Build(cmd) => cmd.run(),
        Command::Package(cmd) => cmd.run(),
        Command::Reproduce(cmd) => cmd.run(),
        Command::Render(cmd) => cmd.run(),
        Command::Bootstrap(cmd) => cmd.run(),
        Command::Deploy(cmd) => cmd.run(),
        Command::Demo(cmd) => cmd.run(),
        Command::Invoke(cmd) => cmd.run(),
        Command::Promote(cmd) => cmd.run(),
        Command::Destroy(cmd) => cmd.run(),
        Command::Status(cmd) => cmd.run(),
        Command::Snapshots(cmd) => cmd.run(),
        Command::Restore(cmd) => cmd.run(),
        Command::Coverage(cmd) => cmd.run(),
        Command::Cost(cmd) => cmd.run(),
        Command::Tripwire(cmd) => cmd.run(),
        Command::Logs(cmd) => cmd.run(),
        Command::Drift(cmd) => cmd.run(),
        Command::Doctor(cmd) => cmd.run(),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            // Exit 2 for a configuration mistake, as for bad usage; 1 for everything else.
            if error
                .chain()
                .any(|e| e.is::<crate::user_error::UserError>())
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
