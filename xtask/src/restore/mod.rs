//! The restore model (pure): this deployment's snapshots grouped into restore points
//! (`points`), and what a restore means and makes, every refusal with its fix (`plan`). The
//! workflow reads the points (`workflows/restore.rs`); the EC2 side is `aws/restore.rs`.

pub mod plan;
pub mod points;
