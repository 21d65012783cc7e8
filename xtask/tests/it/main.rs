//! xtask's end-to-end tests, one binary (so the AWS SDK is linked once, not once per file):
//! each module is one story through the real `xtask` binary against the emulator.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used)]

mod accounts;
mod bench;
mod bootstrap;
mod common;
mod consistency_iam;
mod coverage;
mod demo;
mod iam;
mod interruptions;
mod lifecycle;
mod logs;
mod organization;
mod promote;
mod recycle_bin;
mod restore;
mod tiers;
mod tripwire;
mod tripwire_iam;
mod vault;
mod vault_iam;
