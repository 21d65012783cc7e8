//! Where the deployer's files live: the workspace, templates, tools, builds and rendered stacks.

use crate::build::architecture::Architecture;
use std::path::{Path, PathBuf};

/// The workspace root (the folder holding `Cargo.toml`, `templates/`, `smartvault.yaml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `templates/`: the CloudFormation templates.
pub fn templates() -> PathBuf {
    workspace_root().join("templates")
}

/// `target/tools`: the project's Python tool environments (the emulator finds moto there too).
pub fn tools() -> PathBuf {
    workspace_root().join("target").join("tools")
}

/// `target/lambda/<arch>`: the Lambda build of `bootstrap` and its zip.
pub fn lambda_build(arch: Architecture) -> PathBuf {
    workspace_root()
        .join("target")
        .join("lambda")
        .join(arch.lambda_name())
}

/// `target/smartvault/<env>`: what deploy sends for an environment, and promoted artifacts.
pub fn environment(name: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join("smartvault")
        .join(name)
}

/// A scratch folder for tests under `target/tools/test-scratch`.
#[cfg(test)]
pub fn test_scratch(name: &str) -> PathBuf {
    let dir = tools().join("test-scratch").join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_deployer_and_the_emulator_agree_on_the_workspace_and_the_tools() {
        assert_eq!(super::workspace_root(), emulator::workspace_root());
        assert_eq!(super::tools(), emulator::tools_dir());
        assert!(super::workspace_root().join("smartvault.yaml").is_file());
    }
}
