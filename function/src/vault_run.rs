//! The vault half of a run, at the edges: a workload deployment shares its completed sets with
//! its vault account and ends each share once the vault has its copy (read through the vault's
//! read-only role), and reports vault lag; a vault deployment copies what its workload accounts
//! share with its own key, locks the copies in compliance mode and expires them by its rule.

use crate::execute::{self, Deadline, Mode, Writes};
use crate::inventory;
use crate::model::Snapshot;
use crate::plan::Skip;
use crate::report::{Failure, Locked, VaultCopies, VaultShares};
use crate::vault::{self, VaultKeeper, VaultTarget};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// What either side of the vault did this run.
#[derive(Debug, Default)]
pub struct Vaulted {
    pub shares: Option<VaultShares>,
    pub copies: Option<VaultCopies>,
    pub locked: Vec<Locked>,
    pub skipped: Vec<Skip>,
    pub failed: Vec<Failure>,
    pub warnings: Vec<String>,
}

/// What both sides need from the invocation.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub ec2: &'a aws_sdk_ec2::Client,
    pub sdk: &'a aws_config::SdkConfig,
    pub deployment: &'a str,
    /// The account this deployment runs in.
    pub account: &'a str,
    pub region: &'a str,
    pub pacer: &'a crate::pacing::Pacer,
    pub deadline: Option<&'a Deadline>,
    pub limit: usize,
    pub mode: Mode,
    pub page_size: i32,
    pub settle: std::time::Duration,
}

impl<'a> Setup<'a> {
    fn writes(&self, ec2: &'a aws_sdk_ec2::Client, region: Option<&'a str>) -> Writes<'a> {
        Writes {
            ec2,
            pacer: self.pacer,
            deadline: self.deadline,
            limit: self.limit,
            mode: self.mode,
            region,
        }
    }
}

/// The workload side: `own` is this deployment's snapshots in its region as the run read them.
pub async fn share(
    setup: Setup<'_>,
    target: &VaultTarget,
    own: &[Snapshot],
    now: OffsetDateTime,
) -> Vaulted {
    let mut done = Vaulted::default();
    let mut report = VaultShares {
        account: target.account.clone(),
        max_lag_hours: target.max_lag_hours,
        ..VaultShares::default()
    };
    let shared = match inventory::shared_with(
        setup.ec2,
        setup.deployment,
        &target.account,
        setup.page_size,
    )
    .await
    {
        Ok(shared) => shared,
        Err(failure) => {
            done.failed.push(failure);
            done.shares = Some(report);
            return done;
        }
    };
    let reader = reader_client(setup.sdk, target).await;
    let vaulted = match inventory::vault_copies_of(&reader, setup.account, setup.page_size).await {
        Ok(vaulted) => vaulted,
        Err(mut failure) => {
            // Without the vault's view nothing is shared, unshared or measured (sharing blind
            // would share again what the vault already has); the completion events go on
            // sharing new sets, and the failure reaches the errors alarm.
            failure.message = format!(
                "reading the vault's copies through {}: {}; check that the vault deployment \
                 lists this account in vault_for and is deployed",
                target.reader_role, failure.message
            );
            done.failed.push(failure);
            done.shares = Some(report);
            return done;
        }
    };
    let plan = vault::plan_shares(own, &shared, &vaulted, target, setup.deployment, now);
    let writes = setup.writes(setup.ec2, None);
    let added = execute::share_snapshots(writes, plan.share, &target.account, true).await;
    let removed = execute::share_snapshots(writes, plan.unshare, &target.account, false).await;
    report.shared = added.done.len();
    report.unshared = removed.done.len();
    report.lag_hours = Some(plan.lag.iter().map(|l| l.hours).max().unwrap_or(0));
    report.behind = plan
        .lag
        .iter()
        .filter(|l| l.hours > target.max_lag_hours)
        .filter_map(|l| {
            l.behind_since.map(|since| {
                format!(
                    "{}: its sets since {} have no vault copy ({} h)",
                    l.instance_id,
                    crate::tags::format_time(since),
                    l.hours
                )
            })
        })
        .collect();
    if !report.behind.is_empty() {
        done.warnings.push(format!(
            "{} instance(s) have waited longer than vault.max_lag_hours={} for the vault account \
             {}: check the vault deployment's own summary",
            report.behind.len(),
            target.max_lag_hours,
            target.account
        ));
    }
    if added.carried + removed.carried > 0 {
        done.warnings.push(format!(
            "{} vault share changes were left for the next run: the invocation's time ran out",
            added.carried + removed.carried
        ));
    }
    done.failed.extend(added.failed);
    done.failed.extend(removed.failed);
    done.skipped.extend(plan.skips);
    done.shares = Some(report);
    done
}

/// An EC2 client in the vault account and region, through the vault's read-only role.
async fn reader_client(sdk: &aws_config::SdkConfig, target: &VaultTarget) -> aws_sdk_ec2::Client {
    let region = aws_config::Region::new(target.region.clone());
    let provider = aws_config::sts::AssumeRoleProvider::builder(&target.reader_role)
        .session_name("smartvault-vault-lag")
        .region(region.clone())
        .configure(sdk)
        .build()
        .await;
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(sdk)
            .region(region)
            .credentials_provider(provider)
            .build(),
    )
}

/// The vault side: this deployment's own region is the vault's.
pub async fn pull(setup: Setup<'_>, keeper: &VaultKeeper, now: OffsetDateTime) -> Vaulted {
    let mut done = Vaulted::default();
    let mut report = VaultCopies::default();
    // What each source region shares with this account.
    let regions: BTreeSet<&str> = keeper.sources.iter().map(|s| s.region.as_str()).collect();
    let mut shared = Vec::new();
    for region in regions {
        let owners: Vec<String> = keeper
            .sources
            .iter()
            .filter(|s| s.region == region)
            .map(|s| s.account.clone())
            .collect();
        let client = if region == setup.region {
            setup.ec2.clone()
        } else {
            aws_sdk_ec2::Client::from_conf(
                setup
                    .ec2
                    .config()
                    .to_builder()
                    .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
                    .build(),
            )
        };
        match inventory::shared_from(&client, &owners, region, setup.page_size).await {
            Ok(found) => shared.extend(found),
            Err(failure) => done.failed.push(failure),
        }
    }
    let destination = match inventory::destination(
        setup.ec2,
        setup.region,
        setup.deployment,
        None,
        setup.page_size,
    )
    .await
    {
        Ok(destination) => destination,
        Err(failure) => {
            // Without its own copies the vault cannot tell what it has: nothing is done.
            done.failed.push(failure);
            done.copies = Some(report);
            return done;
        }
    };
    let locks = match inventory::locks(setup.ec2, setup.page_size).await {
        Ok(locks) => locks,
        Err(failure) => {
            // Without the locks, expiry could not honour them: nothing is done.
            done.failed.push(failure);
            done.copies = Some(report);
            return done;
        }
    };
    let plan = vault::plan_pull(
        &shared,
        &destination.copies,
        &locks,
        destination.pending,
        keeper,
        setup.deployment,
        setup.region,
        now,
    );
    report.completed = plan.completed;
    report.in_flight = plan.in_flight;
    report.waiting = plan.waiting;
    done.skipped.extend(plan.skips);
    let writes = setup.writes(setup.ec2, None);
    let requests = plan.copies.clone();
    let copied = execute::copy_snapshots(writes, plan.copies, setup.settle).await;
    report.started = copied.started.len();
    report.waiting += copied.waiting;
    done.failed.extend(copied.failed);
    let started: Vec<_> = copied
        .started
        .iter()
        .filter_map(|(source, copy)| {
            let request = requests.iter().find(|r| &r.source_snapshot_id == source)?;
            Some((request.clone(), copy.clone()?))
        })
        .collect();
    let (mut lock_requests, skips) = vault::locks_for_started(&started, keeper, now);
    done.skipped.extend(skips);
    lock_requests.extend(plan.locks);
    let locked = execute::lock_snapshots(writes, lock_requests).await;
    done.locked.extend(locked.locked);
    done.failed.extend(locked.failed);
    let deleted = execute::delete_snapshots(writes, plan.deletes).await;
    report.deleted = deleted.deleted.len();
    done.failed.extend(deleted.failed);
    done.skipped.extend(deleted.skipped);
    done.copies = Some(report);
    done
}

/// Both sides, as the invocation's configuration asks: the workload's shares when it has a
/// vault, the vault's pull when it is one.
pub(crate) async fn sweep(
    ctx: &crate::context::Context,
    mode: Mode,
    deadline: Option<&Deadline>,
    own: &[Snapshot],
    now: OffsetDateTime,
) -> Vaulted {
    let mut done = Vaulted::default();
    if ctx.config.vault.is_none() && ctx.config.vault_for.is_none() {
        return done;
    }
    let setup = setup(ctx, mode, deadline);
    if let Some(target) = &ctx.config.vault {
        done = share(setup, target, own, now).await;
    }
    if let Some(keeper) = &ctx.config.vault_for {
        let pulled = pull(setup, keeper, now).await;
        done.copies = pulled.copies;
        done.locked.extend(pulled.locked);
        done.skipped.extend(pulled.skipped);
        done.failed.extend(pulled.failed);
        done.warnings.extend(pulled.warnings);
    }
    done
}

/// A copy run's part (EC2's completion event): the event's completed snapshots are shared
/// with the vault at once, so it can pull them before the next scheduled run; ending shares
/// and measuring lag wait for that run, which reads the whole deployment.
pub(crate) async fn share_completed(
    ctx: &crate::context::Context,
    mode: Mode,
    completed: &[Snapshot],
    now: OffsetDateTime,
) -> Vaulted {
    let mut done = Vaulted::default();
    let Some(target) = &ctx.config.vault else {
        return done;
    };
    let setup = setup(ctx, mode, None);
    let plan = vault::plan_shares(
        completed,
        &BTreeSet::new(),
        &Default::default(),
        target,
        setup.deployment,
        now,
    );
    let added = execute::share_snapshots(
        setup.writes(setup.ec2, None),
        plan.share,
        &target.account,
        true,
    )
    .await;
    done.shares = Some(VaultShares {
        account: target.account.clone(),
        shared: added.done.len(),
        max_lag_hours: target.max_lag_hours,
        ..VaultShares::default()
    });
    done.failed.extend(added.failed);
    done.skipped.extend(plan.skips);
    done
}

fn setup<'a>(
    ctx: &'a crate::context::Context,
    mode: Mode,
    deadline: Option<&'a Deadline>,
) -> Setup<'a> {
    Setup {
        ec2: &ctx.ec2,
        sdk: &ctx.sdk,
        deployment: &ctx.config.policy.deployment,
        account: crate::context::region_and_account(&ctx.config.sns_topic_arn).1,
        region: &ctx.regions.home,
        pacer: &ctx.pacer,
        deadline,
        limit: ctx.config.max_concurrency,
        mode,
        page_size: ctx.page_size,
        settle: ctx.settle,
    }
}

/// What the vault half did, into the run's report.
pub(crate) fn merge(report: &mut crate::report::RunReport, vaulted: Vaulted) {
    report.vault = vaulted.shares;
    report.vault_copies = vaulted.copies;
    report.locked.extend(vaulted.locked);
    report.failed.extend(vaulted.failed);
    report.skipped.extend(vaulted.skipped);
    report.warnings.extend(vaulted.warnings);
}
