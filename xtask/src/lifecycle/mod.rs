//! Workflows on an environment that more than one command runs: deploy (deploy, promote, the
//! demo), destroy (destroy, the demo) and invoke (invoke, the demo). They call edges only.

pub mod deploy;
pub mod destroy;
#[cfg(test)]
mod destroy_tests;
pub mod invoke;
