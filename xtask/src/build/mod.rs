//! `cargo xtask build`: the function for Lambda, with glibc pinned to Amazon Linux 2023's.

pub mod architecture;
pub mod lint;
pub mod local_runtime;
pub mod package;
pub mod reproduce;
pub mod tools;

use crate::build::architecture::Architecture;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// Amazon Linux 2023 (`provided.al2023`) ships glibc 2.34.
pub const RUNTIME_GLIBC: (u32, u32) = (2, 34);

/// Where the built binary is copied: `target/lambda/<arch>/bootstrap`.
pub fn output_path(arch: Architecture) -> PathBuf {
    crate::paths::lambda_build(arch).join("bootstrap")
}

/// Where `package` writes the Lambda build's zip: `target/lambda/<arch>/bootstrap.zip`.
pub fn zip_path(arch: Architecture) -> PathBuf {
    crate::paths::lambda_build(arch).join("bootstrap.zip")
}

/// Builds `bootstrap` for `arch` with cargo-zigbuild against glibc 2.34, checks the glibc
/// symbol versions it needs, and copies it to [`output_path`].
pub fn build(arch: Architecture) -> Result<PathBuf> {
    let root = crate::paths::workspace_root();
    let (built, bytes) = build_in(&root, arch)?;
    let out = output_path(arch);
    std::fs::create_dir_all(out.parent().unwrap_or(&root))
        .context("failed to create target/lambda")?;
    std::fs::copy(&built, &out)
        .with_context(|| format!("failed to copy to `{}`", out.display()))?;
    eprintln!("built {} ({} KiB)", out.display(), bytes.len() / 1024);
    Ok(out)
}

/// Builds `bootstrap` for `arch` from the checkout at `root` (into its own `target/`), and
/// checks it: glibc no newer than the runtime's, no path of this machine. Returns where it is
/// and its bytes.
pub fn build_in(root: &std::path::Path, arch: Architecture) -> Result<(PathBuf, Vec<u8>)> {
    let venv = crate::build::tools::ensure()?;
    let triple = arch.rust_target();
    check_target_installed(triple)?;
    let root = root.to_path_buf();
    let path = std::env::join_paths(std::iter::once(venv.join("bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let target = format!("{triple}.{}.{}", RUNTIME_GLIBC.0, RUNTIME_GLIBC.1);
    eprintln!(
        "building bootstrap for {} (profile lambda, target {target}); a first build takes several minutes",
        arch.lambda_name()
    );
    let cargo_home = cargo_home();
    let flags = encoded_rustflags(
        std::env::var("CARGO_ENCODED_RUSTFLAGS").ok(),
        std::env::var("RUSTFLAGS").ok(),
        &remap_flags(&root, &cargo_home),
    );
    let status = Command::new(venv.join("bin").join("cargo-zigbuild"))
        .args([
            "zigbuild",
            "--profile",
            "lambda",
            "--package",
            "function",
            "--bin",
            "bootstrap",
            "--target",
            &target,
        ])
        .env("PATH", path)
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(&root)
        .status()
        .context("failed to run cargo-zigbuild from the tool environment")?;
    if !status.success() {
        bail!("the Lambda build failed ({status}); the compiler's messages are above");
    }
    let built = root
        .join("target")
        .join(triple)
        .join("lambda")
        .join("bootstrap");
    let bytes =
        std::fs::read(&built).with_context(|| format!("failed to read `{}`", built.display()))?;
    check_glibc(&bytes)?;
    let leaked = embedded_paths(&bytes, &[&root, &cargo_home]);
    if !leaked.is_empty() {
        bail!(
            "the binary embeds {} path(s) of this machine (e.g. {}): the same source would not \
             give the same bytes on another machine; the build passes --remap-path-prefix for \
             the checkout and cargo's home, so something else named them",
            leaked.len(),
            leaked[0]
        );
    }
    Ok((built, bytes))
}

/// Cargo's home: its registry and git checkouts, whose paths end up in panic messages.
pub fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

/// The `--remap-path-prefix` flags that keep this machine's paths out of the binary: the
/// checkout becomes `/smartvault`, cargo's home `/cargo` (so a crate's source reads
/// `/cargo/registry/src/index.crates.io-.../aws-config-1.13.0/src/...` on every machine).
pub fn remap_flags(workspace: &std::path::Path, cargo_home: &std::path::Path) -> Vec<String> {
    vec![
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/smartvault", workspace.display()),
    ]
}

/// `CARGO_ENCODED_RUSTFLAGS` for the build: the flags the caller set (the encoded form wins
/// over `RUSTFLAGS`, as cargo reads them), then `extra`; separated by 0x1f as cargo expects.
pub fn encoded_rustflags(
    encoded: Option<String>,
    plain: Option<String>,
    extra: &[String],
) -> String {
    let mut flags: Vec<String> = match (encoded, plain) {
        (Some(encoded), _) if !encoded.is_empty() => {
            encoded.split('\x1f').map(str::to_owned).collect()
        }
        (_, Some(plain)) => plain.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    flags.extend(extra.iter().cloned());
    flags.join("\x1f")
}

/// Which of `paths` (this machine's folders) occur in `binary`, each once.
pub fn embedded_paths(binary: &[u8], paths: &[&std::path::Path]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.len() > 1 && binary.windows(p.len()).any(|w| w == p.as_bytes()))
        .collect()
}

fn check_target_installed(triple: &str) -> Result<()> {
    let output = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", triple])
        .output()
        .context("failed to run rustc")?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let has_std = std::fs::read_dir(&libdir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
        .unwrap_or(false);
    if !has_std {
        bail!(
            "the Rust standard library for {triple} is not installed; run `rustup target add {triple}` and build again"
        );
    }
    Ok(())
}

/// The glibc symbol versions a binary needs (`GLIBC_2.34` and the like), highest last.
pub fn glibc_versions(binary: &[u8]) -> Vec<(u32, u32)> {
    const PREFIX: &[u8] = b"GLIBC_";
    let mut versions = Vec::new();
    let mut i = 0;
    while let Some(offset) = binary[i..].windows(PREFIX.len()).position(|w| w == PREFIX) {
        let start = i + offset + PREFIX.len();
        let end = binary[start..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .map_or(binary.len(), |p| start + p);
        let text = String::from_utf8_lossy(&binary[start..end]);
        let mut parts = text.split('.').map(|p| p.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            versions.push((major, minor));
        }
        i = end.max(start);
    }
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// Refuses a binary that needs a newer glibc than the Lambda runtime has.
pub fn check_glibc(binary: &[u8]) -> Result<()> {
    if let Some(&(major, minor)) = glibc_versions(binary).last()
        && (major, minor) > RUNTIME_GLIBC
    {
        bail!(
            "the binary needs GLIBC_{major}.{minor}, but provided.al2023 has glibc {}.{}; build with \
             `cargo xtask build` (cargo-zigbuild pins the glibc version) rather than plain cargo",
            RUNTIME_GLIBC.0,
            RUNTIME_GLIBC.1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_are_read_from_the_binary() {
        let binary = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.17\0x";
        assert_eq!(glibc_versions(binary), vec![(2, 2), (2, 17), (2, 34)]);
        assert!(check_glibc(binary).is_ok());
    }

    #[test]
    fn a_newer_glibc_is_refused_with_the_fix() {
        let error = check_glibc(b"\0GLIBC_2.38\0").unwrap_err().to_string();
        assert!(
            error.contains("GLIBC_2.38") && error.contains("cargo xtask build"),
            "{error}"
        );
    }

    #[test]
    fn the_build_remaps_this_machines_paths_after_the_callers_flags() {
        let flags = remap_flags(
            std::path::Path::new("/home/ci/work/smartvault"),
            std::path::Path::new("/home/ci/.cargo"),
        );
        assert_eq!(
            flags,
            [
                "--remap-path-prefix=/home/ci/.cargo=/cargo",
                "--remap-path-prefix=/home/ci/work/smartvault=/smartvault"
            ]
        );
        assert_eq!(
            encoded_rustflags(None, Some("-C target-cpu=x86-64-v2".into()), &flags),
            format!("-C\x1ftarget-cpu=x86-64-v2\x1f{}\x1f{}", flags[0], flags[1])
        );
        assert_eq!(
            encoded_rustflags(
                Some("-Dwarnings".into()),
                Some("ignored".into()),
                &flags[..1]
            ),
            format!("-Dwarnings\x1f{}", flags[0])
        );
        assert_eq!(encoded_rustflags(None, None, &flags[..1]), flags[0]);
    }

    #[test]
    fn a_binary_naming_a_path_of_this_machine_is_found_out() {
        let home = std::path::Path::new("/root/.cargo");
        let checkout = std::path::Path::new("/work/main");
        let leaky = b"panicked at /root/.cargo/registry/src/x/lib.rs:1:2\0/cargo/registry/y.rs";
        assert_eq!(embedded_paths(leaky, &[checkout, home]), ["/root/.cargo"]);
        let clean = b"panicked at /cargo/registry/src/x/lib.rs and /smartvault/function/src/a.rs";
        assert!(embedded_paths(clean, &[checkout, home]).is_empty());
    }

    #[test]
    fn this_host_build_of_xtask_is_read_without_error() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(
            !glibc_versions(&me).is_empty(),
            "a dynamically linked test binary names glibc versions"
        );
    }
}
