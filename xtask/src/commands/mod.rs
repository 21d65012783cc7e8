//! The subcommands, one module each: its arguments as a struct with a `run`. A command module
//! imports edges (`cfn`, `snapshots`, `artifact_store`, `aws`), pure modules and `lifecycle`
//! workflows, never another command; `command_modules_import_no_other_command` holds that.

pub mod bench;
pub mod bootstrap;
pub mod build;
pub mod cost;
pub mod coverage;
pub mod demo;
pub mod deploy;
pub mod destroy;
pub mod doctor;
pub mod drift;
pub mod emulator;
pub mod invoke;
pub mod logs;
pub mod package;
pub mod promote;
pub mod render;
pub mod reproduce;
pub mod restore;
pub mod snapshots;
pub mod status;
pub mod test;
pub mod tools;
pub mod tripwire;

use crate::config::{self, Environment};
use anyhow::Result;
use std::path::PathBuf;

/// Which environment, from which config file.
#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    /// The environment in the config file (local, dev, staging, prod, ...).
    #[arg(long = "env", short = 'e')]
    pub name: String,
    /// The config file (default: smartvault.yaml at the workspace root).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl EnvArgs {
    pub fn load(&self) -> Result<Environment> {
        config::load(self.config.as_deref(), &self.name)
    }

    /// The vault environment `env` names in `vault:`, read from the same config file, for a
    /// command's `--from-vault`; refused with the fix when `env` has no vault.
    pub fn load_vault(&self, env: &Environment) -> Result<Environment> {
        let Some(vault) = &env.vault else {
            return Err(crate::user_error::UserError(format!(
                "--from-vault: environment {} has no vault; leave --from-vault out to use its \
                 own sets, or add `vault:` to it (docs/deployer.md, \"Vault account\")",
                env.name
            ))
            .into());
        };
        config::load(self.config.as_deref(), &vault.environment)
    }

    /// The environment, for a command that works on one stack in one account and region
    /// (`command`): an organization's environment is refused, naming what to do instead.
    pub fn load_stack(&self, command: &str) -> Result<Environment> {
        let env = self.load()?;
        if env.targets.is_some() {
            return Err(crate::user_error::UserError(format!(
                "`cargo xtask {command}` works on one stack, and {} is an organization's stack \
                 set whose stack instances run in the member accounts; use `cargo xtask status \
                 --env {}` for every instance, or give a member account and region an \
                 environment of its own (region, role_arn) to {command} there",
                env.name, env.name
            ))
            .into());
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    /// What a command file may reach through `super::`: this module's shared plumbing, and
    /// (from its own `mod tests`) itself.
    const SHARED: &[&str] = &["EnvArgs", "*"];

    /// The names a line reaches through `super::` (`super::a`, `super::{a, b}`).
    fn through_super(code: &str) -> Vec<String> {
        let mut names = Vec::new();
        for rest in code.split("super::").skip(1) {
            if let Some(list) = rest.strip_prefix('{') {
                let list = list.split('}').next().unwrap_or_default();
                names.extend(list.split(',').map(|n| n.trim().to_owned()));
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '*')
                    .collect();
                names.push(name);
            }
        }
        names.retain(|n| !n.is_empty());
        names
    }

    #[test]
    fn the_scanner_sees_every_form() {
        assert_eq!(
            through_super("use super::{EnvArgs, deploy};"),
            ["EnvArgs", "deploy"]
        );
        assert_eq!(through_super("super::deploy::run()"), ["deploy"]);
        assert_eq!(through_super("use super::*;"), ["*"]);
    }

    /// No command module names another: `commands::` or a `super::` path to anything but the
    /// shared plumbing is a violation.
    #[test]
    fn command_modules_import_no_other_command() {
        let dir = crate::paths::workspace_root().join("xtask/src/commands");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_stem().is_some_and(|s| s == "mod") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                let foreign: Vec<String> = through_super(code)
                    .into_iter()
                    .filter(|n| !SHARED.contains(&n.as_str()))
                    .collect();
                assert!(
                    !code.contains("commands::") && foreign.is_empty(),
                    "{}:{}: a command reaches another command: {line}",
                    path.display(),
                    number + 1
                );
            }
            checked += 1;
        }
        assert!(
            checked >= 13,
            "only {checked} command modules in {}",
            dir.display()
        );
    }
}
