//! `cargo xtask test`: every check the project has, with the tools and the emulator ready.

use anyhow::{Context, Result};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Run every check: rustfmt, clippy, template lint and all tests against the local emulator.
#[derive(Debug, clap::Args)]
pub struct Test {}

impl Test {
    pub fn run(self) -> Result<ExitCode> {
        run()
    }
}

fn run() -> Result<ExitCode> {
    crate::build::tools::ensure()?;
    let moto_server = crate::build::tools::bin("moto_server");
    let steps: Vec<(&str, Vec<&str>)> = vec![
        ("rustfmt", vec!["fmt", "--all", "--check"]),
        (
            "clippy",
            vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("tests", vec!["test", "--workspace", "--no-fail-fast"]),
    ];
    let mut failed = Vec::new();
    eprintln!("==> cfn-lint and checkov on every environment's rendered templates");
    match crate::build::lint::templates() {
        Ok(count) => eprintln!("==> templates: ok ({count} templates clean)"),
        Err(error) => {
            eprintln!("==> templates: FAILED: {error:#}");
            failed.push("templates");
        }
    }
    eprintln!("==> parliament on every IAM policy SmartVault ships");
    match crate::build::lint::policies() {
        Ok(count) => eprintln!("==> policies: ok ({count} policies, no unjustified finding)"),
        Err(error) => {
            eprintln!("==> policies: FAILED: {error:#}");
            failed.push("policies");
        }
    }
    eprintln!("==> actionlint on the GitHub Actions workflows");
    match crate::build::lint::workflows() {
        Ok(count) => eprintln!("==> workflows: ok ({count} workflows clean)"),
        Err(error) => {
            eprintln!("==> workflows: FAILED: {error:#}");
            failed.push("workflows");
        }
    }
    for (name, args) in &steps {
        eprintln!("==> cargo {}", args.join(" "));
        let started = Instant::now();
        let status = cargo()
            .args(args)
            .env(emulator::MOTO_SERVER_VAR, &moto_server)
            .status()
            .with_context(|| format!("failed to run `cargo {}`", args.join(" ")))?;
        eprintln!(
            "==> {name}: {} in {:.0?}",
            if status.success() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        if !status.success() {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        eprintln!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("failed: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(crate::paths::workspace_root());
    command
}
