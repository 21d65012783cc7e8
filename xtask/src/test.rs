//! `cargo xtask test`: every check the project has, with the tools and the emulator ready.

use anyhow::{Context, Result};
use std::process::{Command, ExitCode};
use std::time::Instant;

pub fn run() -> Result<ExitCode> {
    crate::tools::ensure()?;
    let moto_server = crate::tools::bin("moto_server");
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
        ("tests", vec!["test", "--workspace"]),
    ];
    let mut failed = Vec::new();
    eprintln!("==> cfn-lint on every environment's rendered templates");
    match lint_templates() {
        Ok(count) => eprintln!("==> templates: ok ({count} templates lint-clean)"),
        Err(error) => {
            eprintln!("==> templates: FAILED: {error:#}");
            failed.push("templates");
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

/// Renders every environment of smartvault.yaml as deploy would and runs cfn-lint on the result.
fn lint_templates() -> Result<usize> {
    let config = emulator::workspace_root().join(crate::config::FILE_NAME);
    let mut templates = Vec::new();
    for name in crate::config::names(&config)? {
        let env = crate::config::load(&config, &name)?;
        let location = crate::template::offline_location(None, None)?;
        let rendered = crate::template::render(&env, &location)?;
        let dir = crate::template::write_rendered(&env, &rendered)?;
        templates.push(dir.join("template.yaml"));
        templates.push(dir.join("bootstrap.yaml"));
    }
    let status = Command::new(crate::tools::bin("cfn-lint"))
        .args(&templates)
        .status()
        .context("failed to run cfn-lint from the tool environment")?;
    anyhow::ensure!(
        status.success(),
        "cfn-lint found problems ({status}); its findings are above"
    );
    Ok(templates.len())
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(emulator::workspace_root());
    command
}
