//! The function's integration tests, one binary (so the AWS SDK is linked once): the handler
//! against the emulator, under faults, through SDK mocks, and its copy and restore-test runs.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used)]

mod backup_run;
mod common;
mod consistency;
mod copies;
mod ebs_direct;
mod faults;
mod locks;
mod mocks;
mod restore_test;
mod tiers;
mod tripwire;
mod vault;
