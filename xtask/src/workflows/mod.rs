//! What the commands do, one feature each (bootstrap, deploy, destroy, doctor, organization,
//! restore, coverage, drift, logs, invoke): each reads through the AWS edges (`aws/`), decides
//! with pure code, and applies; a feature several commands run (deploy: deploy, promote, the
//! demo, the bench) lives here once.

pub mod bootstrap;
pub mod cost;
pub mod coverage;
pub mod deploy;
pub mod destroy;
pub mod doctor;
pub mod invoke;
pub mod organization;
pub mod restore;
pub mod tripwire;
