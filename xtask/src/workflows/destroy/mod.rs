//! Destroying an environment: a survey of what exists, a pure plan (what goes, in what order,
//! what stays and why) that is printed, and an apply that carries out exactly that plan and
//! reports every failure instead of stopping at the first.

#[cfg(test)]
mod apply_tests;

use crate::aws::Aws;
use crate::aws::artifact_store;
use crate::aws::cfn::{self, Resource, StackView};
use crate::aws::snapshots::{self, Deletions, Limits};
use crate::config::Environment;
use crate::output::{Output, confirm};
use crate::stack::template::BOOTSTRAP_STACK;
use anyhow::{Result, bail};
use function::model::Snapshot;
use std::fmt::Write as _;

/// Snapshot handling on destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshots {
    Delete,
    /// `--unlock-governance`: governance locks are removed first (the operator's explicit
    /// choice, with their own `ec2:UnlockSnapshot`); compliance locks are never touched.
    DeleteUnlockingGovernance,
    Keep,
}

/// Everything destroy looked at before deciding.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// The environment's stack, when it exists.
    pub stack: Option<StackView>,
    pub resources: Vec<Resource>,
    pub snapshots: Vec<Snapshot>,
    /// The locks on those snapshots, by snapshot id (none known when they cannot be read:
    /// EC2 then refuses each locked deletion, and destroy reports it kept).
    pub locks: std::collections::BTreeMap<String, function::locks::SnapshotLock>,
    /// This deployment's copies in each copy region (configured now, or recorded by the
    /// stack), by region.
    pub copies: Vec<(String, Vec<Snapshot>)>,
    /// Volumes a restore test left (tagged `smartvault:restore-test` with the stack's name),
    /// with their sizes.
    pub test_volumes: Vec<(String, i32)>,
    /// The function's log group exists (the stack's own, or one left by an earlier stack).
    pub log_group: bool,
    /// Every other stack in the region, to tell whether they share the artifact or bucket.
    pub other_stacks: Vec<StackView>,
    /// The bootstrap stack's artifact bucket, when it exists.
    pub bootstrap_bucket: Option<String>,
    /// The CloudFormation execution role the stack is deleted with, when bootstrapped.
    pub execution_role: Option<String>,
}

/// One removal; a plan lists them in the order they are carried out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// First, so no scheduled run makes a snapshot after the others are gone.
    Stack {
        stack: String,
        resources: Vec<String>,
    },
    /// Volumes a restore test could not delete (still creating when it stopped waiting).
    /// After the stack, so no test makes another; always, since they are no backup.
    TestVolumes {
        count: usize,
        gib: i64,
    },
    /// Governance locks to remove first (`--unlock-governance` only).
    UnlockGovernance {
        snapshot_ids: Vec<String>,
    },
    Snapshots {
        count: usize,
        gib: i64,
    },
    /// This deployment's copies in another region.
    Copies {
        region: String,
        count: usize,
        gib: i64,
    },
    /// After the stack: a last invocation can recreate it until the function is gone.
    LogGroup {
        name: String,
    },
    Artifact {
        bucket: String,
        key: String,
    },
}

/// What destroy leaves in place, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    pub what: String,
    pub why: String,
}

/// What destroy will do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub environment: String,
    pub stack: String,
    pub steps: Vec<Step>,
    pub kept: Vec<Kept>,
}

/// Decides what destroy removes. Refuses a stack with termination protection on.
pub fn plan(env: &Environment, survey: &Survey, snapshots: Snapshots) -> Result<Plan> {
    let stack = &env.stack_name;
    if survey
        .stack
        .as_ref()
        .is_some_and(|s| s.termination_protection)
    {
        bail!(
            "stack {stack} has termination protection on; set `termination_protection: false` for {} in \
             smartvault.yaml and deploy, or run `aws cloudformation update-termination-protection \
             --no-enable-termination-protection --stack-name {stack}`, then destroy again",
            env.name
        );
    }
    let mut steps = Vec::new();
    let mut kept = Vec::new();
    if let Some(view) = &survey.stack {
        steps.push(Step::Stack {
            stack: view.name.clone(),
            resources: survey
                .resources
                .iter()
                .filter(|r| !r.resource_type.is_empty())
                .map(|r| format!("{} {} ({})", r.resource_type, r.logical_id, r.physical_id))
                .collect(),
        });
    }
    if !survey.test_volumes.is_empty() {
        steps.push(Step::TestVolumes {
            count: survey.test_volumes.len(),
            gib: survey.test_volumes.iter().map(|(_, g)| i64::from(*g)).sum(),
        });
    }
    let gib: i64 = survey.snapshots.iter().map(|s| i64::from(s.size_gib)).sum();
    let unlock = snapshots == Snapshots::DeleteUnlockingGovernance;
    let deletable = survey.deletable(unlock);
    match snapshots {
        Snapshots::Delete | Snapshots::DeleteUnlockingGovernance => {
            let governed = survey.governed();
            if unlock && !governed.is_empty() {
                steps.push(Step::UnlockGovernance {
                    snapshot_ids: governed,
                });
            }
            if !deletable.is_empty() {
                steps.push(Step::Snapshots {
                    count: deletable.len(),
                    gib: deletable.iter().map(|s| i64::from(s.size_gib)).sum(),
                });
            }
            if let Some(kept_locked) = locked_kept(survey, unlock) {
                kept.push(kept_locked);
            }
        }
        Snapshots::Keep => kept.push(Kept {
            what: format!("{} snapshots ({gib} GiB)", survey.snapshots.len()),
            why: "--keep-snapshots".into(),
        }),
    }
    for (region, copies) in &survey.copies {
        let gib = copies.iter().map(|s| i64::from(s.size_gib)).sum();
        match snapshots {
            Snapshots::Delete | Snapshots::DeleteUnlockingGovernance if !copies.is_empty() => steps
                .push(Step::Copies {
                    region: region.clone(),
                    count: copies.len(),
                    gib,
                }),
            Snapshots::Delete | Snapshots::DeleteUnlockingGovernance => {}
            Snapshots::Keep => kept.push(Kept {
                what: format!("{} copies in {region} ({gib} GiB)", copies.len()),
                why: "--keep-snapshots".into(),
            }),
        }
    }
    // The stack's own log group goes with it, unless a last invocation writes to it again
    // while the function is deleted; a group left by an earlier stack goes too.
    if survey.stack.is_some() || survey.log_group {
        steps.push(Step::LogGroup {
            name: log_group(stack),
        });
    }
    let others = |bucket: &str, key: Option<&str>| -> Vec<String> {
        survey
            .other_stacks
            .iter()
            .filter(|s| s.name != *stack)
            .filter(|s| {
                s.parameters
                    .artifact_object()
                    .is_some_and(|(b, k)| b == bucket && key.is_none_or(|key| key == k))
            })
            .map(|s| s.name.clone())
            .collect()
    };
    let artifact = survey
        .stack
        .as_ref()
        .and_then(|s| s.parameters.artifact_object());
    if let Some((bucket, key)) = artifact {
        let users = others(bucket, Some(key));
        if users.is_empty() {
            steps.push(Step::Artifact {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        } else {
            kept.push(Kept {
                what: format!("the artifact s3://{bucket}/{key}"),
                why: format!("{} runs it", users.join(", ")),
            });
        }
    }
    // A region-wide, locked Recycle Bin rule outlives the stack on purpose (DeletionPolicy:
    // Retain): only an administrator removes it, after its unlock delay.
    if let Some(delay) = survey
        .stack
        .as_ref()
        .and_then(|s| s.parameters.recycle_bin_unlock_delay_days.as_deref())
        .filter(|days| !days.is_empty() && *days != "0")
    {
        kept.push(Kept {
            what: format!("the region-wide, locked Recycle Bin rule of {stack}"),
            why: format!(
                "it stays when the stack goes (recycle_bin.region_wide): an administrator \
                 unlocks it (`aws rbin list-rules --resource-type EBS_SNAPSHOT --lock-state \
                 locked --region {region}` finds it, `aws rbin unlock-rule --identifier ID` \
                 unlocks it) and may delete it {delay} days later",
                region = env.region
            ),
        });
    }
    // The bootstrap stack is the account's and region's, not the environment's: an
    // administrator made it, and only an administrator can remove its execution role.
    if let Some(bucket) = &survey.bootstrap_bucket {
        let users = others(bucket, None);
        kept.push(Kept {
            what: format!("the bootstrap stack {BOOTSTRAP_STACK} and its bucket {bucket}"),
            why: if users.is_empty() {
                format!(
                    "shared setup of the account and region; no environment uses it now, and \
                     an administrator removes it with `cargo xtask bootstrap --region {} \
                     --delete`",
                    env.region
                )
            } else {
                format!("{} deploy from it", users.join(", "))
            },
        });
    }
    Ok(Plan {
        environment: env.name.clone(),
        stack: stack.clone(),
        steps,
        kept,
    })
}

/// How hard destroy's deletions may push EC2: the environment's own settings.
fn limits(env: &Environment) -> Limits {
    Limits {
        concurrency: env.max_concurrency as usize,
        rate_share_percent: f64::from(env.ec2_rate_share),
        refill_per_second: f64::from(env.ec2_refill_per_second),
    }
}

/// The function's log group, named after the stack.
pub fn log_group(stack: &str) -> String {
    format!("/aws/lambda/{stack}")
}

impl Plan {
    /// The plan as people read it before they confirm.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "destroy {} ({}) will remove:\n",
            self.stack, self.environment
        );
        if self.steps.is_empty() {
            text.push_str("  nothing: no stack, snapshot, log group or artifact of it exists\n");
        }
        for step in &self.steps {
            let _ = match step {
                Step::Stack { stack, resources } => {
                    let _ = writeln!(
                        text,
                        "  stack {stack} and its {} resources:",
                        resources.len()
                    );
                    resources.iter().try_for_each(|r| writeln!(text, "    {r}"))
                }
                Step::TestVolumes { count, gib } => {
                    writeln!(text, "  {count} volumes a restore test left ({gib} GiB)")
                }
                Step::UnlockGovernance { snapshot_ids } => writeln!(
                    text,
                    "  the governance locks of {} snapshots (--unlock-governance), removed \
                     first: {}",
                    snapshot_ids.len(),
                    snapshot_ids.join(", ")
                ),
                Step::Snapshots { count, gib } => writeln!(
                    text,
                    "  {count} snapshots made by this deployment ({gib} GiB)"
                ),
                Step::Copies { region, count, gib } => writeln!(
                    text,
                    "  {count} copies in {region} made by this deployment ({gib} GiB)"
                ),
                Step::LogGroup { name } => {
                    writeln!(text, "  the log group {name} if it outlives the stack")
                }
                Step::Artifact { bucket, key } => {
                    writeln!(text, "  the artifact s3://{bucket}/{key}")
                }
            };
        }
        for kept in &self.kept {
            let _ = writeln!(text, "keeping {} ({})", kept.what, kept.why);
        }
        text
    }
}

/// What destroy found and did, for `--output json`.
#[derive(Debug, Default, serde::Serialize)]
pub struct DestroyResult {
    pub environment: String,
    pub stack: String,
    pub stack_existed: bool,
    pub resources: Vec<String>,
    pub snapshots_found: usize,
    pub snapshots_gib: i64,
    pub snapshots_deleted: Vec<String>,
    /// Snapshot id and why it was kept.
    pub snapshots_kept: Vec<(String, String)>,
    /// This deployment's copies found in other regions.
    pub copies_found: usize,
    /// Each copy deleted, as `<region>/<snapshot id>`.
    pub copies_deleted: Vec<String>,
    /// Volumes a restore test left, deleted.
    pub test_volumes_deleted: Vec<String>,
    pub log_group_deleted: bool,
    pub artifacts_deleted: Vec<String>,
    /// What was kept on purpose, and why.
    pub kept: Vec<Kept>,
    /// Every step or item that failed, with the error; empty when destroy did all it planned.
    pub failures: Vec<String>,
    /// Kept snapshots whose fast snapshot restores destroy disabled (with no function left,
    /// nothing else would stop their hourly bill), as `<snapshot id> in <zones>`.
    #[serde(default)]
    pub fast_restores_disabled: Vec<String>,
}

/// The whole destroy: checks the account, surveys, prints the plan, asks (unless `yes`), and
/// carries the plan out. The result lists every failure; the caller decides the exit code.
pub async fn destroy(
    aws: &Aws,
    env: &Environment,
    yes: bool,
    snapshots: Snapshots,
    output: Output,
) -> Result<DestroyResult> {
    aws.check_account(env.account_id.as_deref()).await?;
    let survey = survey(aws, env).await?;
    let plan = plan(env, &survey, snapshots)?;
    output.progress(plan.describe().trim_end());
    if !confirm(yes, &format!("destroy {}?", plan.stack))? {
        bail!("destroy cancelled; nothing was removed");
    }
    Ok(apply(aws, env, &plan, &survey, output).await)
}

impl Survey {
    /// The snapshots no lock holds: the ones destroy can delete.
    pub fn unlocked_snapshots(&self) -> Vec<Snapshot> {
        self.deletable(false)
    }

    /// The snapshots destroy deletes: those no lock holds, and with `unlock_governance` also
    /// those only a governance lock holds.
    pub fn deletable(&self, unlock_governance: bool) -> Vec<Snapshot> {
        self.snapshots
            .iter()
            .filter(|s| !self.is_locked(s, unlock_governance))
            .cloned()
            .collect()
    }

    /// The snapshots a governance lock holds.
    pub fn governed(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .filter(|s| {
                self.locks
                    .get(&s.id)
                    .is_some_and(|l| l.state == function::locks::LockState::Governance)
            })
            .map(|s| s.id.clone())
            .collect()
    }

    fn is_locked(&self, snapshot: &Snapshot, unlock_governance: bool) -> bool {
        self.locks
            .get(&snapshot.id)
            .is_some_and(|lock| match lock.state {
                function::locks::LockState::Expired => false,
                function::locks::LockState::Governance => !unlock_governance,
                _ => true,
            })
    }
}

/// What stays because a lock holds it: how many, until when, and how to finish later.
/// Destroy never unlocks a snapshot.
fn locked_kept(survey: &Survey, unlock_governance: bool) -> Option<Kept> {
    let locked: Vec<&Snapshot> = survey
        .snapshots
        .iter()
        .filter(|s| survey.is_locked(s, unlock_governance))
        .collect();
    if locked.is_empty() {
        return None;
    }
    let gib: i64 = locked.iter().map(|s| i64::from(s.size_gib)).sum();
    let lock = |s: &&Snapshot| survey.locks.get(&s.id).copied();
    let last_end = locked
        .iter()
        .filter_map(|s| lock(s).and_then(|l| l.expires_on))
        .max();
    let compliance = locked.iter().filter_map(lock).any(|l| {
        matches!(
            l.state,
            function::locks::LockState::Compliance | function::locks::LockState::ComplianceCooloff
        )
    });
    let until = last_end.map_or_else(|| "their locks end".to_owned(), function::tags::format_time);
    Some(Kept {
        what: format!(
            "{} snapshots locked until {until} at the latest ({gib} GiB): {}",
            locked.len(),
            locked
                .iter()
                .map(|s| match lock(s) {
                    Some(l) => format!("{} {}", s.id, l.describe()),
                    None => s.id.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        why: format!(
            "a lock holds them{}; destroy never unlocks one. Run `cargo xtask destroy` again \
             after {until} to delete them (they are billed until then)",
            if compliance {
                " (compliance: nobody, the account root included, can delete them sooner)"
            } else {
                " (governance: `destroy --unlock-governance`, with credentials holding \
             ec2:UnlockSnapshot, removes them)"
            }
        ),
    })
}

/// Looks at everything destroy may remove.
pub async fn survey(aws: &Aws, env: &Environment) -> Result<Survey> {
    let stack = &env.stack_name;
    let view = cfn::describe(aws, stack).await?;
    let resources = match &view {
        Some(_) => cfn::resources(aws, stack).await?,
        None => Vec::new(),
    };
    let name = log_group(stack);
    let log_group = crate::aws::logs::group_exists(aws, &name).await?;
    let bootstrap = cfn::describe(aws, BOOTSTRAP_STACK).await?;
    let output = |name: &str| {
        bootstrap
            .as_ref()
            .and_then(|s| s.outputs.get(name).cloned())
    };
    let regions = snapshots::copy_regions(env, view.as_ref());
    let copies = snapshots::copies_by_region(aws, regions, stack, &env.region).await?;
    let found = snapshots::managed(aws, stack).await?;
    let locks = if found.is_empty() {
        Default::default()
    } else {
        snapshots::locks(aws).await
    };
    Ok(Survey {
        snapshots: found,
        locks,
        test_volumes: crate::aws::volumes::test_volumes(aws, stack).await?,
        copies,
        stack: view,
        resources,
        log_group,
        other_stacks: cfn::describe_all(aws)
            .await?
            .into_iter()
            .filter(|s| s.name != *stack)
            .collect(),
        bootstrap_bucket: output("ArtifactBucketName"),
        execution_role: output("ExecutionRoleArn"),
    })
}

/// Deletes the volumes a restore test left; a volume already gone counts as deleted.
async fn delete_test_volumes(aws: &Aws, volumes: &[(String, i32)], result: &mut DestroyResult) {
    for (id, _) in volumes {
        match crate::aws::volumes::delete_volume(&aws.ec2, id).await {
            Ok(()) => result.test_volumes_deleted.push(id.clone()),
            Err(error) => result.failures.push(format!(
                "deleting restore test volume {id} failed: {error:#} (a volume still being \
                 created cannot be deleted yet: destroy again in a few minutes)"
            )),
        }
    }
}

/// Carries out `plan` step by step. A failed step is recorded and the next goes on, except
/// after a failed stack deletion: while the stack stands, its function still runs and needs
/// its snapshots, artifact and bucket, so nothing else is removed.
pub async fn apply(
    aws: &Aws,
    env: &Environment,
    plan: &Plan,
    survey: &Survey,
    output: Output,
) -> DestroyResult {
    let progress = |message: String| output.progress(message);
    let mut result = DestroyResult {
        environment: plan.environment.clone(),
        stack: plan.stack.clone(),
        stack_existed: survey.stack.is_some(),
        snapshots_found: survey.snapshots.len(),
        snapshots_gib: survey.snapshots.iter().map(|s| i64::from(s.size_gib)).sum(),
        copies_found: survey.copies.iter().map(|(_, c)| c.len()).sum(),
        kept: plan.kept.clone(),
        ..DestroyResult::default()
    };
    // What --unlock-governance unlocked: deleted with the snapshots no lock holds.
    let mut unlocked: Vec<String> = Vec::new();
    for step in &plan.steps {
        let outcome: Result<()> = match step {
            Step::UnlockGovernance { snapshot_ids } => {
                progress(format!(
                    "unlocking {} snapshots locked in governance mode",
                    snapshot_ids.len()
                ));
                for id in snapshot_ids {
                    match crate::aws::unlock::governance(aws, id).await {
                        Ok(()) => unlocked.push(id.clone()),
                        Err(error) => result
                            .failures
                            .push(format!("unlocking {id} failed: {error:#}; it is kept")),
                    }
                }
                Ok(())
            }
            Step::Stack { stack, resources } => {
                result.resources = resources.clone();
                progress(format!("deleting stack {stack}"));
                // Without a role, CloudFormation uses the one the stack was deployed with.
                cfn::delete_and_wait(aws, stack, survey.execution_role.as_deref()).await
            }
            Step::Copies { region, count, .. } => {
                progress(format!("deleting {count} copies in {region}"));
                let found = survey
                    .copies
                    .iter()
                    .find(|(r, _)| r == region)
                    .map(|(_, c)| c.as_slice())
                    .unwrap_or_default();
                let ec2 = snapshots::ec2_in(aws, region);
                let Deletions {
                    deleted,
                    kept,
                    failed,
                } = snapshots::delete(&ec2, Some(region), found, limits(env)).await;
                progress(format!(
                    "deleted {} copies in {region}, kept {}, failed {}",
                    deleted.len(),
                    kept.len(),
                    failed.len()
                ));
                for (id, why) in &kept {
                    progress(format!("  kept {id} in {region}: {why}"));
                }
                result
                    .copies_deleted
                    .extend(deleted.iter().map(|id| format!("{region}/{id}")));
                result.snapshots_kept.extend(
                    kept.into_iter()
                        .map(|(id, why)| (format!("{region}/{id}"), why)),
                );
                result.failures.extend(
                    failed
                        .into_iter()
                        .map(|(id, error)| format!("deleting {id} in {region} failed: {error}")),
                );
                Ok(())
            }
            Step::TestVolumes { count, .. } => {
                progress(format!("deleting {count} volumes a restore test left"));
                delete_test_volumes(aws, &survey.test_volumes, &mut result).await;
                Ok(())
            }
            Step::Snapshots { count, .. } => {
                progress(format!("deleting {count} snapshots"));
                // Those no lock holds, and those --unlock-governance unlocked.
                let mut deletable = survey.unlocked_snapshots();
                deletable.extend(
                    survey
                        .snapshots
                        .iter()
                        .filter(|s| unlocked.contains(&s.id))
                        .cloned(),
                );
                let Deletions {
                    deleted,
                    kept,
                    failed,
                } = snapshots::delete(&aws.ec2, None, &deletable, limits(env)).await;
                progress(format!(
                    "deleted {} snapshots, kept {}, failed {}",
                    deleted.len(),
                    kept.len(),
                    failed.len()
                ));
                for (id, why) in &kept {
                    progress(format!("  kept {id}: {why}"));
                }
                result.snapshots_deleted = deleted;
                result.snapshots_kept = kept;
                result.failures.extend(
                    failed
                        .into_iter()
                        .map(|(id, error)| format!("deleting {id} failed: {error}")),
                );
                Ok(())
            }
            Step::LogGroup { name } => {
                // Already gone with the stack: nothing left to remove.
                crate::aws::logs::delete_group(aws, name)
                    .await
                    .map(|deleted| {
                        if deleted {
                            progress(format!("deleted log group {name}, left outside the stack"));
                            result.log_group_deleted = true;
                        }
                    })
            }
            Step::Artifact { bucket, key } => {
                let deleted = artifact_store::delete_versions(aws, bucket, Some(key)).await;
                if deleted.is_ok() {
                    result
                        .artifacts_deleted
                        .push(format!("s3://{bucket}/{key}"));
                }
                deleted.map(drop)
            }
        };
        if let Err(error) = outcome {
            progress(format!("failed: {error:#}"));
            result.failures.push(format!("{error:#}"));
            if matches!(step, Step::Stack { .. }) {
                result.failures.push(format!(
                    "nothing else was removed: stack {} still stands, and its function needs \
                     its snapshots and artifact; fix the stack's deletion and destroy again",
                    plan.stack
                ));
                break;
            }
        }
    }
    let (disabled, failures) = disable_fast_restores(aws, survey, &result, output).await;
    result.fast_restores_disabled = disabled;
    result.failures.extend(failures);
    result
}

/// Disables fast snapshot restore on the deployment's snapshots destroy keeps (a deleted
/// snapshot's end with it): with the function gone, nothing else would.
async fn disable_fast_restores(
    aws: &Aws,
    survey: &Survey,
    result: &DestroyResult,
    output: Output,
) -> (Vec<String>, Vec<String>) {
    let kept: Vec<&str> = survey
        .snapshots
        .iter()
        .filter(|s| !result.snapshots_deleted.contains(&s.id))
        .map(|s| s.id.as_str())
        .collect();
    snapshots::end_fast_restores(aws, &kept, output).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::parameters::StackParameters;

    fn env() -> Environment {
        crate::config::example("dev")
    }

    fn stack(name: &str, bucket: &str, key: &str) -> StackView {
        StackView {
            name: name.into(),
            status: "UPDATE_COMPLETE".into(),
            parameters: StackParameters {
                artifact_bucket: Some(bucket.into()),
                artifact_key: Some(key.into()),
                artifact_sha256: Some("ab".into()),
                ..StackParameters::default()
            },
            outputs: Default::default(),
            termination_protection: false,
        }
    }

    fn snapshot(id: &str, gib: i32) -> Snapshot {
        Snapshot {
            volume_id: Some("vol-1".into()),
            size_gib: gib,
            ..Snapshot::tagged(id, function::model::SnapshotState::Completed, &[])
        }
    }

    /// Everything of `smartvault-dev` exists and nobody else uses its artifact or bucket.
    fn everything() -> Survey {
        Survey {
            stack: Some(stack("smartvault-dev", "bucket", "artifacts/a.zip")),
            resources: vec![Resource {
                resource_type: "AWS::Lambda::Function".into(),
                logical_id: "Function".into(),
                physical_id: "smartvault-dev".into(),
            }],
            snapshots: vec![snapshot("snap-1", 8), snapshot("snap-2", 20)],
            locks: Default::default(),
            copies: vec![("us-west-2".into(), vec![snapshot("snap-c1", 8)])],
            test_volumes: vec![("vol-t1".into(), 8)],
            log_group: true,
            other_stacks: Vec::new(),
            bootstrap_bucket: Some("bucket".into()),
            execution_role: Some("arn:aws:iam::1:role/smartvault-bootstrap-cfn-exec-r".into()),
        }
    }

    /// A region-wide, locked Recycle Bin rule is kept, saying how an administrator removes it;
    /// without one nothing is said.
    #[test]
    fn a_region_wide_locked_bin_rule_is_kept_with_how_to_remove_it() {
        let plain = plan(&env(), &everything(), Snapshots::Delete).unwrap();
        assert!(!plain.kept.iter().any(|k| k.what.contains("Recycle Bin")));
        let mut survey = everything();
        if let Some(stack) = survey.stack.as_mut() {
            stack.parameters.recycle_bin_unlock_delay_days = Some("14".into());
        }
        let wide = plan(&env(), &survey, Snapshots::Delete).unwrap();
        let kept = wide
            .kept
            .iter()
            .find(|k| k.what.contains("region-wide, locked Recycle Bin rule"))
            .unwrap();
        assert!(
            kept.why.contains("aws rbin unlock-rule")
                && kept.why.contains("14 days later")
                && kept.why.contains("--lock-state locked"),
            "{}",
            kept.why
        );
    }

    /// A snapshot a lock holds stays, with until when and how to finish; destroy deletes the
    /// rest and never unlocks. An expired lock holds nothing.
    #[test]
    fn locked_snapshots_are_kept_with_their_end_and_the_rest_deleted() {
        use function::locks::{LockState, SnapshotLock};
        let end = time::macros::datetime!(2027-02-01 00:00 UTC);
        let mut survey = everything();
        survey.snapshots.push(snapshot("snap-3", 5));
        survey.locks = [
            ("snap-1", LockState::Compliance),
            ("snap-3", LockState::Expired),
        ]
        .into_iter()
        .map(|(id, state)| {
            (
                id.to_owned(),
                SnapshotLock {
                    state,
                    expires_on: Some(end),
                },
            )
        })
        .collect();
        let plan = plan(&env(), &survey, Snapshots::Delete).unwrap();
        let count = plan.steps.iter().find_map(|s| match s {
            Step::Snapshots { count, gib } => Some((*count, *gib)),
            _ => None,
        });
        assert_eq!(
            count,
            Some((2, 25)),
            "snap-2 and snap-3 (its lock expired) go"
        );
        let ids: Vec<String> = survey
            .unlocked_snapshots()
            .iter()
            .map(|s| s.id.clone())
            .collect();
        assert_eq!(ids, ["snap-2", "snap-3"]);
        let kept = plan
            .kept
            .iter()
            .find(|k| k.what.starts_with("1 snapshots locked"))
            .unwrap_or_else(|| panic!("{:?}", plan.kept));
        assert!(
            kept.what
                .contains("snap-1 compliance until 2027-02-01T00:00:00Z")
                && kept.why.contains("destroy never unlocks")
                && kept.why.contains("again after 2027-02-01T00:00:00Z")
                && kept.why.contains("nobody, the account root included"),
            "{kept:?}"
        );
    }

    fn kinds(plan: &Plan) -> Vec<&'static str> {
        plan.steps
            .iter()
            .map(|s| match s {
                Step::Stack { .. } => "stack",
                Step::TestVolumes { .. } => "test volumes",
                Step::UnlockGovernance { .. } => "unlock governance",
                Step::Snapshots { .. } => "snapshots",
                Step::Copies { .. } => "copies",
                Step::LogGroup { .. } => "log group",
                Step::Artifact { .. } => "artifact",
            })
            .collect()
    }

    #[test]
    fn what_exists_decides_what_goes_in_what_order_and_what_stays() {
        let shared_artifact = Survey {
            other_stacks: vec![stack("smartvault-staging", "bucket", "artifacts/a.zip")],
            ..everything()
        };
        let shared_bucket = Survey {
            other_stacks: vec![stack("smartvault-staging", "bucket", "artifacts/b.zip")],
            ..everything()
        };
        let stopped_first_deploy = Survey {
            stack: None,
            resources: Vec::new(),
            snapshots: Vec::new(),
            copies: Vec::new(),
            test_volumes: Vec::new(),
            log_group: false,
            ..everything()
        };
        let nothing = Survey::default();
        let unused = "the bootstrap stack smartvault-bootstrap and its bucket bucket (shared \
                      setup of the account and region; no environment uses it now, and an \
                      administrator removes it with `cargo xtask bootstrap --region eu-west-1 \
                      --delete`)";
        let used = "the bootstrap stack smartvault-bootstrap and its bucket bucket \
                    (smartvault-staging deploy from it)";
        type Case<'a> = (&'a str, Survey, Snapshots, &'a [&'a str], &'a [&'a str]);
        let cases: [Case; 6] = [
            (
                "all of it",
                everything(),
                Snapshots::Delete,
                &[
                    "stack",
                    "test volumes",
                    "snapshots",
                    "copies",
                    "log group",
                    "artifact",
                ],
                &[unused],
            ),
            (
                "snapshots and copies kept as asked",
                everything(),
                Snapshots::Keep,
                &["stack", "test volumes", "log group", "artifact"],
                &[
                    "2 snapshots (28 GiB) (--keep-snapshots)",
                    "1 copies in us-west-2 (8 GiB) (--keep-snapshots)",
                    unused,
                ],
            ),
            (
                "another environment runs the same artifact",
                shared_artifact,
                Snapshots::Delete,
                &["stack", "test volumes", "snapshots", "copies", "log group"],
                &[
                    "the artifact s3://bucket/artifacts/a.zip (smartvault-staging runs it)",
                    used,
                ],
            ),
            (
                "another environment deploys from the bucket",
                shared_bucket,
                Snapshots::Delete,
                &[
                    "stack",
                    "test volumes",
                    "snapshots",
                    "copies",
                    "log group",
                    "artifact",
                ],
                &[used],
            ),
            (
                "a first deploy stopped before its stack: only the bootstrap is left, and stays",
                stopped_first_deploy,
                Snapshots::Delete,
                &[],
                &[unused],
            ),
            ("nothing at all", nothing, Snapshots::Delete, &[], &[]),
        ];
        for (name, survey, snapshots, steps, kept) in cases {
            let plan = plan(&env(), &survey, snapshots).unwrap();
            assert_eq!(kinds(&plan), steps, "{name}");
            let kept_text: Vec<String> = plan
                .kept
                .iter()
                .map(|k| format!("{} ({})", k.what, k.why))
                .collect();
            assert_eq!(kept_text, kept, "{name}");
            let described = plan.describe();
            for k in kept {
                assert!(
                    described.contains(&format!("keeping {k}")),
                    "{name}: {described}"
                );
            }
        }
    }

    #[test]
    fn the_printed_plan_names_every_removal() {
        let plan = plan(&env(), &everything(), Snapshots::Delete).unwrap();
        let text = plan.describe();
        for expected in [
            "destroy smartvault-dev (dev) will remove:",
            "stack smartvault-dev and its 1 resources:",
            "AWS::Lambda::Function Function (smartvault-dev)",
            "2 snapshots made by this deployment (28 GiB)",
            "the log group /aws/lambda/smartvault-dev if it outlives the stack",
            "the artifact s3://bucket/artifacts/a.zip",
            "keeping the bootstrap stack smartvault-bootstrap and its bucket bucket",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
        let empty = super::plan(&env(), &Survey::default(), Snapshots::Delete).unwrap();
        assert!(
            empty.describe().contains("nothing: no stack"),
            "{}",
            empty.describe()
        );
    }

    #[test]
    fn termination_protection_refuses_with_the_way_out() {
        let mut survey = everything();
        if let Some(view) = survey.stack.as_mut() {
            view.termination_protection = true;
        }
        let refused = plan(&env(), &survey, Snapshots::Delete)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("termination protection on")
                && refused.contains("termination_protection: false"),
            "{refused}"
        );
    }
}
