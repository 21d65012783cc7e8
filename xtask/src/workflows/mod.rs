//! Workflows more than one command runs: deploy (deploy, promote, the demo), bootstrap
//! (bootstrap, deploy), destroy (destroy, the demo), invoke (invoke, the demo) and doctor
//! (doctor, deploy). They call edges only.

pub mod bootstrap;
pub mod coverage;
pub mod deploy;
pub mod destroy;
pub mod doctor;
pub mod drift;
pub mod invoke;
pub mod logs;
pub mod organization;
pub mod restore;
