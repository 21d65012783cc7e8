//! SmartVault's backup function: configuration, events, the pure planning core and the AWS edges.
//!
//! The pure modules (`config`, `event`, `model`, `plan`, `copies`, `coverage`, `restore_test`,
//! `records`,
//! `report`, `tags`, `lock`, and `pacing`'s bucket) take plain data and an explicit `now`; only
//! `inventory`, `execute`, `dr`, `drill` and `handler` talk to AWS.

pub mod archive;
pub mod backup_run;
pub mod changes;
pub mod config;
pub mod consistency;
pub mod consistent_run;
pub mod context;
pub mod copies;
pub mod copy_run;
pub mod cost;
pub mod coverage;
pub mod ebs_direct;
pub mod ec2_query;
pub mod event;
pub mod execute;
pub mod fast_plan;
pub mod fast_restore;
pub mod handler;
pub mod inventory;
pub mod links;
pub mod locks;
pub mod logging;
pub mod measure_run;
pub mod model;
pub mod pacing;
pub mod plan;
pub mod report;
pub mod restore_records;
pub mod restore_test;
pub mod restore_test_run;
pub mod run_mark;
pub mod sdk_errors;
pub mod settings;
pub mod signed;
pub mod ssm;
pub mod tags;
pub mod tier_run;
pub mod topic;
pub mod tripwire;
pub mod vault;
pub mod vault_run;
pub mod volumes;
