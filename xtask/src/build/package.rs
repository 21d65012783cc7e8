//! The Lambda zip, byte-for-byte reproducible from the same binary, and its content hash.

use crate::build::architecture::Architecture;
use crate::user_error::UserError;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A packaged function: the zip's bytes and their sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl Artifact {
    /// The object key in the artifact bucket: content-addressed, so an upload is skipped when
    /// the same bytes are already there, and two builds never overwrite each other.
    pub fn key(&self) -> String {
        artifact_key(&self.sha256)
    }
}

/// The one line `build` and `package` print: where the zip is, its size and its sha256.
impl std::fmt::Display for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} bytes sha256 {}",
            self.path.display(),
            self.size,
            self.sha256
        )
    }
}

/// The bucket key of the zip whose sha256 is `sha256`.
pub fn artifact_key(sha256: &str) -> String {
    format!("artifacts/{sha256}.zip")
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How hard to compress: the Lambda artifact is zipped as small as deflate goes (zopfli, one
/// iteration: 53 KB under zlib's best on a 7 MB binary, in about 15 s); a host build for the
/// demo, many times larger and never uploaded to AWS, with zlib's best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Smallest,
    Fast,
}

/// Zips `binary` as the single entry `bootstrap`, mode 0755, with a fixed timestamp, so the
/// same binary always gives the same bytes.
pub fn zip_bootstrap(binary: &[u8], compression: Compression) -> Result<Vec<u8>> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        // Levels above 9 are zopfli with (level - 9) iterations.
        .compression_level(Some(match compression {
            Compression::Smallest => 10,
            Compression::Fast => 9,
        }))
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    zip.start_file("bootstrap", options)
        .context("failed to start the zip entry")?;
    zip.write_all(binary)
        .context("failed to write the zip entry")?;
    zip.finish().context("failed to finish the zip")?;
    Ok(buffer.into_inner())
}

/// Packages the binary at `binary` into `bootstrap.zip` beside it.
pub fn package(binary: &Path, compression: Compression) -> Result<Artifact> {
    let bytes = std::fs::read(binary).with_context(|| {
        format!(
            "failed to read `{}`; run `cargo xtask build` first",
            binary.display()
        )
    })?;
    let zipped = zip_bootstrap(&bytes, compression)?;
    let path = binary.with_file_name("bootstrap.zip");
    std::fs::write(&path, &zipped)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(Artifact {
        sha256: sha256_hex(&zipped),
        size: zipped.len() as u64,
        path,
    })
}

/// Reads an existing zip as an artifact (for `deploy --artifact`).
/// Every refusal is a usage mistake (exit 2): the flag names a file that cannot be the artifact.
pub fn open(path: &Path) -> Result<Artifact> {
    let bytes = std::fs::read(path).map_err(|e| {
        crate::user_error::UserError(format!(
            "--artifact `{}` cannot be read: {e}; give the zip `cargo xtask build` or \
             `cargo xtask package` made",
            path.display()
        ))
    })?;
    let archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).map_err(|e| {
        crate::user_error::UserError(format!(
            "`{}` is not a zip file ({e}); give the zip `cargo xtask build` or `cargo xtask \
             package` made",
            path.display()
        ))
    })?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("`{}` has an unreadable entry name", path.display()))?;
    if names != ["bootstrap"] {
        anyhow::bail!(crate::user_error::UserError(format!(
            "`{}` must hold exactly one entry named `bootstrap`, not {names:?}; make it with \
             `cargo xtask package`",
            path.display()
        )));
    }
    Ok(Artifact {
        path: path.to_path_buf(),
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
    })
}

/// The `e_machine` field of an ELF header; `None` when `header` is not ELF.
pub fn elf_machine(header: &[u8]) -> Option<u16> {
    if header.len() < 20 || !header.starts_with(b"\x7fELF") {
        return None;
    }
    let field = [header[18], header[19]];
    // EI_DATA (byte 5): 2 is big-endian, 1 little-endian.
    Some(if header[5] == 2 {
        u16::from_be_bytes(field)
    } else {
        u16::from_le_bytes(field)
    })
}

/// Refuses (exit 2) a zip whose `bootstrap` is not a binary for `arch`, naming both, before
/// it is deployed where it could not start.
pub fn check_architecture(zip_path: &Path, arch: Architecture) -> Result<()> {
    let bytes = std::fs::read(zip_path)
        .with_context(|| format!("failed to read `{}`", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .with_context(|| format!("`{}` is not a zip file", zip_path.display()))?;
    let mut entry = archive
        .by_name("bootstrap")
        .with_context(|| format!("`{}` has no `bootstrap` entry", zip_path.display()))?;
    let mut header = Vec::with_capacity(64);
    std::io::Read::by_ref(&mut entry)
        .take(64)
        .read_to_end(&mut header)
        .with_context(|| format!("failed to read `bootstrap` in `{}`", zip_path.display()))?;
    let found = match elf_machine(&header) {
        None => "not an ELF binary".to_owned(),
        Some(machine) => match Architecture::from_elf_machine(machine) {
            Some(found) if found == arch => return Ok(()),
            Some(found) => format!("built for {}", found.lambda_name()),
            None => format!("built for ELF machine {machine}, which Lambda does not run"),
        },
    };
    Err(UserError(format!(
        "the artifact `{}` is {found}, but the environment's architecture is {}; build it for \
         {} (`cargo xtask build --arch {}`) or set `architecture` in smartvault.yaml",
        zip_path.display(),
        arch.lambda_name(),
        arch.lambda_name(),
        arch.lambda_name()
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_same_binary_gives_the_same_bytes_and_hash() {
        let binary = b"\x7fELF pretend binary".repeat(1000);
        let first = zip_bootstrap(&binary, Compression::Fast).unwrap();
        let second = zip_bootstrap(&binary, Compression::Fast).unwrap();
        assert_eq!(first, second);
        // The clock never reaches the zip: the entry's stored time is the fixed one (the zip
        // format's epoch), whatever time it is now.
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&first)).unwrap();
        let entry = archive.by_index(0).unwrap();
        let stored = entry.last_modified().expect("the entry stores a time");
        assert_eq!(stored, zip::DateTime::default());
        assert_eq!((stored.year(), stored.month(), stored.day()), (1980, 1, 1));
        assert_eq!((stored.hour(), stored.minute(), stored.second()), (0, 0, 0));
        assert_eq!(sha256_hex(&first), sha256_hex(&second));
        assert_ne!(
            sha256_hex(&first),
            sha256_hex(&zip_bootstrap(b"other", Compression::Fast).unwrap())
        );
    }

    #[test]
    fn the_zip_holds_one_executable_bootstrap_entry() {
        let zipped = zip_bootstrap(b"binary", Compression::Fast).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "bootstrap");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content, b"binary");
    }

    #[test]
    fn a_zip_without_a_single_bootstrap_entry_is_refused() {
        let dir = crate::paths::test_scratch("package-open");
        let path = dir.join("two.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for name in ["bootstrap", "extra"] {
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"x").unwrap();
        }
        zip.finish().unwrap();
        let error = open(&path).unwrap_err().to_string();
        assert!(
            error.contains("exactly one entry named `bootstrap`")
                && error.contains("cargo xtask package"),
            "{error}"
        );
        std::fs::write(&path, b"not a zip").unwrap();
        let error = open(&path).unwrap_err();
        assert!(error.to_string().contains("is not a zip file"), "{error}");
        assert!(
            error.is::<crate::user_error::UserError>(),
            "exit 2, a usage mistake: {error:#}"
        );
    }

    /// An ELF header of `machine`, little- or big-endian, padded to 64 bytes.
    fn elf(machine: u16, big_endian: bool) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 2;
        header[5] = if big_endian { 2 } else { 1 };
        let field = if big_endian {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        };
        header[18..20].copy_from_slice(&field);
        header
    }

    #[test]
    fn the_elf_machine_is_read_in_either_byte_order() {
        assert_eq!(elf_machine(&elf(62, false)), Some(62));
        assert_eq!(elf_machine(&elf(183, true)), Some(183));
        assert_eq!(elf_machine(b"#!/bin/sh\necho hi\n plus enough bytes"), None);
        assert_eq!(elf_machine(b"\x7fELF"), None, "too short");
    }

    #[test]
    fn an_artifact_for_another_architecture_is_refused_naming_both() {
        let dir = crate::paths::test_scratch("package-architecture");
        let zip_of = |name: &str, binary: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, zip_bootstrap(binary, Compression::Fast).unwrap()).unwrap();
            path
        };
        let x86 = zip_of("x86.zip", &elf(62, false));
        let arm = zip_of("arm.zip", &elf(183, false));
        let script = zip_of("script.zip", b"#!/bin/sh\nexit 0\n");
        let riscv = zip_of("riscv.zip", &elf(243, false));
        check_architecture(&x86, Architecture::X86_64).unwrap();
        check_architecture(&arm, Architecture::Arm64).unwrap();
        let cases = [
            (
                &arm,
                Architecture::X86_64,
                "is built for arm64, but the environment's architecture is x86_64",
            ),
            (
                &x86,
                Architecture::Arm64,
                "is built for x86_64, but the environment's architecture is arm64",
            ),
            (&script, Architecture::X86_64, "is not an ELF binary"),
            (
                &riscv,
                Architecture::Arm64,
                "ELF machine 243, which Lambda does not run",
            ),
        ];
        for (path, arch, expected) in cases {
            let error = check_architecture(path, arch).unwrap_err();
            assert!(error.is::<UserError>(), "exit 2: {error:#}");
            let message = error.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("cargo xtask build --arch"), "{message}");
        }
    }

    #[test]
    fn the_key_is_derived_from_the_hash() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(artifact_key("ab12"), "artifacts/ab12.zip");
    }
}
