//! The Lambda architectures SmartVault builds for, and what each is called by Lambda, Rust and ELF.

use serde::{Deserialize, Serialize};

/// The Lambda architectures SmartVault builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Architecture {
    /// The name Lambda uses.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn rust_target(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64-unknown-linux-gnu",
            Architecture::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The ELF header's `e_machine` of a binary for it (`EM_X86_64`, `EM_AARCH64`).
    pub fn elf_machine(self) -> u16 {
        match self {
            Architecture::X86_64 => 62,
            Architecture::Arm64 => 183,
        }
    }

    /// The architecture of an ELF `e_machine`, if Lambda runs it.
    pub fn from_elf_machine(machine: u16) -> Option<Self> {
        [Architecture::X86_64, Architecture::Arm64]
            .into_iter()
            .find(|a| a.elf_machine() == machine)
    }
}
