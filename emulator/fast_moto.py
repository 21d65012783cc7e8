"""Runs moto_server with its EC2 tag lookup made constant-time, and Lambda's GetAccountSettings.

Test-only. moto 5.2.5 finds one resource's tags by scanning every tag of every EC2 resource with
a regular expression (`describe_tags` filtered by resource id), so describing N snapshots costs
N x (all tags): 1,000 snapshots take ~5 s to describe and 4,000 over a minute, which keeps the
large-fleet benchmark from reading its own inventory. The lookup below reads the resource's own
entry of the same tag store and returns the same list, in the same order, as the scan would.

moto 5.2.5 also lacks Lambda's GetAccountSettings. It is answered here from moto's own
functions: a "Concurrent executions" quota of MOTO_LAMBDA_CONCURRENCY_QUOTA (the variable moto's
PutFunctionConcurrency already honours; default 1000, AWS's usual quota) less what the
functions reserve.

moto 5.2.5 lacks CloudFormation's UpdateTerminationProtection; it is answered here by setting
the flag moto's CreateStack already stores and DescribeStacks reports.

moto 5.2.5's ExecuteChangeSet of an update also leaves two things as the stack was created,
where CloudFormation changes them: the stack's outputs (an output the new template adds never
appears) and its role (the RoleARN given with the change set, which CloudFormation uses for the
stack from then on). Both are set from the executed change set below.

moto 5.2.5's UpdateStackSet leaves every stack instance's stack as it was created; it is
updated below, as CloudFormation updates the instances.

moto 5.2.5 has no snapshot locks. EC2's LockSnapshot, UnlockSnapshot and
DescribeLockedSnapshots are answered below as AWS documents them (the EBS user guide's "Lock
snapshots" and the EC2 API reference): governance and compliance modes, a compliance
cooling-off period of 1 to 72 hours, a duration of 1 to 36,500 days or an expiration date, the
lock states compliance-cooloff, governance, compliance and expired; a locked snapshot refuses
DeleteSnapshot; a governance lock, or a compliance lock still cooling off, can be unlocked and
changed, a compliance lock past its cooling-off can only be extended. The lock clock is the
wall clock plus an offset a test sets with POST /moto-api/config {"smartvault":
{"clock_offset_seconds": N}}, since snapshots here cannot be back-dated. Error codes AWS does not
publish are this patch's choice: SnapshotLocked (deleting or unlocking a snapshot the lock
protects), InvalidParameterCombination and InvalidParameterValue (bad lock requests).

moto 5.2.5 has no Recycle Bin either. An AWS::Rbin::Rule created through CloudFormation is kept
below (resource type, resource tags, retention in days); a DeleteSnapshot of a snapshot whose
tags match an EBS_SNAPSHOT rule of its account and region moves it to the bin instead, as AWS
documents; EC2's ListSnapshotsInRecycleBin lists what is there until its retention ends, and
RestoreSnapshotFromRecycleBin puts a snapshot back with its tags. A rule without resource tags
(a region-level rule) keeps every EBS snapshot of its account and region. A rule lock is not
modelled.

moto 5.2.5 keeps each account's EC2 apart, so a snapshot shared with another account
(ModifySnapshotAttribute createVolumePermission) is invisible there. Below, as the EC2 API
reference documents DescribeSnapshots and CopySnapshot: OwnerIds and RestorableByUserIds
select snapshots (an account id, "self" for the caller, "all" for public ones), another
account's snapshot shared with the caller (or public) is listed in its region, without its tags
(tags are visible to their owner only), and CopySnapshot in the caller's account copies it.
Whether KMS lets the caller use the source's key is not modelled.

moto 5.2.5 reads a template's YAML short form `!Condition Name` as {"Fn::Condition": Name}, which
its condition functions do not know, so `!Or [!Condition A, !Condition B]` and `!And [...]` are
always false there; CloudFormation reads it as {"Condition": Name}, as below.

moto 5.2.5's EBS direct APIs know only snapshots made with StartSnapshot, have no lineage
between snapshots and miss blocks present only in the second of two. Below, a volume holds
512 KiB blocks a test writes (POST /moto-api/config {"smartvault": {"volume_writes": [...]}},
`Emulator::write_volume_blocks`: each block random bytes from a seed, or text), a snapshot made
by CreateSnapshot(s) captures its volume's blocks, and ListSnapshotBlocks, ListChangedBlocks and
GetSnapshotBlock answer for it as the EBS direct API reference documents: 524,288-byte blocks,
MaxResults (100-10,000) with NextToken and StartingBlockIndex, block tokens GetSnapshotBlock
checks, changed blocks between two snapshots of one volume (a block in either one that differs
or is absent from the other; without FirstSnapshotId every block of the second), and a
ValidationException for snapshots of different volumes.

Usage: python fast_moto.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import copy
import json
import os
import sys
from datetime import datetime, timedelta, timezone

import moto.awslambda.urls
import moto.server
from moto.awslambda.responses import LambdaResponse
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.moto_api._internal.models import MotoAPIBackend
from moto.ec2.models.tags import EC2_PREFIX_TO_RESOURCE
from moto.ec2.utils import get_prefix


def get_tags(self):
    """The resource's tags, as moto's `describe_tags(filters={"resource-id": [id]})` gives them."""
    if not self.id:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [
        {"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in self.ec2_backend.tags.get(self.id, {}).items()
    ]


TaggedEC2Resource.get_tags = get_tags


def get_account_settings(self):
    """Lambda's GetAccountSettings, from the functions moto holds."""
    quota = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", "1000"))
    functions = self.backend.list_functions()
    reserved = sum(int(f.reserved_concurrency or 0) for f in functions)
    settings = {
        "AccountLimit": {
            "TotalCodeSize": 80530636800,
            "CodeSizeUnzipped": 262144000,
            "CodeSizeZipped": 52428800,
            "ConcurrentExecutions": quota,
            "UnreservedConcurrentExecutions": quota - reserved,
        },
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(functions)},
    }
    return 200, {}, json.dumps(settings)


LambdaResponse.get_account_settings = get_account_settings
moto.awslambda.urls.url_paths[r"{0}/(?P<api_version>[^/]+)/account-settings/?$"] = (
    LambdaResponse.dispatch
)

execute_change_set = CloudFormationBackend.execute_change_set


def execute_change_set_as_aws(self, change_set_name, stack_name=None):
    """ExecuteChangeSet, then the executed change set's outputs and role on its stack."""
    execute_change_set(self, change_set_name, stack_name)
    # The change set moto executed: by ARN, else the last one of that name, as moto finds it.
    change_set = self.change_sets.get(change_set_name)
    if change_set is None:
        named = [c for c in self.change_sets.values() if c.change_set_name == change_set_name]
        change_set = named[-1]
    stack = self.stacks[change_set.stack_id]
    stack._parse_template()
    stack.output_map = stack._create_output_map()
    if change_set.role_arn:
        stack.role_arn = change_set.role_arn


CloudFormationBackend.execute_change_set = execute_change_set_as_aws

def update_termination_protection(self):
    """CloudFormation's UpdateTerminationProtection, on moto's stored flag."""
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    stack.enable_termination_protection = self._get_bool_param("EnableTerminationProtection")
    return ActionResult({"StackId": stack.stack_id})


CloudFormationResponse.update_termination_protection = update_termination_protection

update_stack_set = CloudFormationBackend.update_stack_set


def update_stack_set_as_aws(self, stackset_name, template, description, parameters, tags,
                            admin_role, execution_role, accounts, regions, operation_id):
    """UpdateStackSet, then the update of the instances' stacks, as CloudFormation does.

    moto 5.2.5 stores the stack set's new template and parameters but leaves the stack of
    every instance as it was created. AWS updates the instances in the accounts and regions
    given, or all of them when none are given; so does this, through each account's and
    region's own backend (self-managed instances; service-managed ones are moto's hidden
    stacks, updated in place).
    """
    operation = update_stack_set(self, stackset_name, template, description, parameters, tags,
                                 admin_role, execution_role, accounts, regions, operation_id)
    from moto.cloudformation.models import cloudformation_backends

    stackset = self.describe_stack_set(stackset_name)
    for instance in stackset.stack_instances:
        if accounts and instance.account_id not in accounts:
            continue
        if regions and instance.region_name not in regions:
            continue
        parameters_now = [
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in stackset.parameters.items()
        ]
        if instance.permission_model == "SELF_MANAGED":
            backend = cloudformation_backends[instance.account_id][instance.region_name]
            backend.update_stack(
                name=instance.stack.name,
                template=stackset.template,
                role_arn=None,
                parameters=parameters_now,
                tags=None,
            )
        else:
            instance.stack.update(stackset.template, None, parameters=dict(stackset.parameters))
        instance.template = stackset.template
    return operation


CloudFormationBackend.update_stack_set = update_stack_set_as_aws


# Snapshot locks ------------------------------------------------------------------------------

CLOCK = {"offset_seconds": 0.0}
# (account, region, volume id) -> {block index: (kind, seed)}: what a test wrote to a volume.
VOLUME_BLOCKS = {}

set_config = MotoAPIBackend.set_config


def set_config_with_clock(self, config):
    """moto's /moto-api/config, plus {"smartvault": {"clock_offset_seconds": N}} and
    {"smartvault": {"volume_writes": [{"account", "region", "volume_id", "blocks": [[index,
    "random" | "text" | "zero", seed], ...]}]}}."""
    set_config(self, config)
    if "smartvault" in config:
        ours = config["smartvault"]
        if "clock_offset_seconds" in ours:
            CLOCK["offset_seconds"] = float(ours.get("clock_offset_seconds", 0))
        for name, seconds in ours.get("tier_seconds", {}).items():
            TIER_SECONDS[name] = float(seconds)
        if "fsr_limit" in ours:
            FSR_LIMIT["snapshots"] = int(ours["fsr_limit"])
        for document in ours.get("ssm_documents", []):
            # A command document taking Data Lifecycle Manager's stage parameters, as
            # SmartVault's Linux document and a DLM document declare them.
            content = {
                "schemaVersion": "2.2",
                "description": "a test's stage document",
                "parameters": {
                    "command": {"type": "String",
                                "allowedValues": ["pre-script", "post-script", "dry-run"]},
                    "executionId": {"type": "String", "default": ""},
                },
                "mainSteps": [{"action": "aws:runShellScript", "name": "stage",
                               "inputs": {"runCommand": ["true"]}}],
            }
            ssm_backends[document["account"]][document["region"]].create_document(
                content=json.dumps(content), requires=None, attachments=None,
                name=document["name"], version_name=None, document_type="Command",
                document_format="JSON", target_type=None, tags=None,
            )
        for script in ours.get("ssm_instances", []):
            key = (script["account"], script["region"], script["instance_id"])
            SSM_INSTANCES[key] = {k: v for k, v in script.items() if k not in ("account", "region", "instance_id")}
        for write in ours.get("volume_writes", []):
            blocks = VOLUME_BLOCKS.setdefault(
                (write["account"], write["region"], write["volume_id"]), {}
            )
            for index, kind, seed in write["blocks"]:
                if kind == "zero":
                    blocks.pop(int(index), None)
                else:
                    blocks[int(index)] = (kind, int(seed))


MotoAPIBackend.set_config = set_config_with_clock


def now():
    """The lock clock: the wall clock moved by the test's offset."""
    return datetime.now(timezone.utc) + timedelta(seconds=CLOCK["offset_seconds"])


def lock_state(lock, at):
    """AWS's LockState of `lock` at `at`."""
    if lock["expires"] <= at:
        return "expired"
    if lock["mode"] == "governance":
        return "governance"
    if lock.get("cool_off_expires") and at < lock["cool_off_expires"]:
        return "compliance-cooloff"
    return "compliance"


def lock_info(snapshot, lock, at):
    """A LockedSnapshotsInfo / LockSnapshotResult of `lock`."""
    info = {
        "OwnerId": snapshot.owner_id,
        "SnapshotId": snapshot.id,
        "LockState": lock_state(lock, at),
        "LockCreatedOn": lock["created"],
        "LockDurationStartTime": lock["start"],
        "LockExpiresOn": lock["expires"],
    }
    if lock.get("duration_days"):
        info["LockDuration"] = lock["duration_days"]
    if lock.get("cool_off_hours"):
        info["CoolOffPeriod"] = lock["cool_off_hours"]
        info["CoolOffPeriodExpiresOn"] = lock["cool_off_expires"]
    return info


def bad(code, message):
    return EC2ClientError(code, message)


def lock_snapshot(self):
    """EC2 LockSnapshot."""
    snapshot = self.ec2_backend.get_snapshot(self._get_param("SnapshotId"))
    self.error_on_dryrun()
    mode = self._get_param("LockMode")
    cool_off = self._get_int_param("CoolOffPeriod")
    duration = self._get_int_param("LockDuration")
    expiration = self._get_param("ExpirationDate")
    at = now()
    if mode not in ("governance", "compliance"):
        raise bad("InvalidParameterValue", f"LockMode {mode!r} is not governance or compliance")
    if cool_off is not None and mode != "compliance":
        raise bad("InvalidParameterCombination", "CoolOffPeriod applies to compliance mode only")
    if cool_off is not None and not 1 <= cool_off <= 72:
        raise bad("InvalidParameterValue", f"CoolOffPeriod {cool_off} is not 1 to 72 hours")
    if (duration is None) == (expiration is None):
        raise bad("InvalidParameterCombination", "give LockDuration or ExpirationDate, not both")
    if duration is not None:
        if not 1 <= duration <= 36500:
            raise bad("InvalidParameterValue", f"LockDuration {duration} is not 1 to 36500 days")
        expires = at + timedelta(days=duration)
    else:
        # moto parses the timestamp by the service model; a string in older versions.
        if isinstance(expiration, str):
            expiration = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        expires = expiration if expiration.tzinfo else expiration.replace(tzinfo=timezone.utc)
        if expires <= at + timedelta(days=1) - timedelta(minutes=1):
            raise bad("InvalidParameterValue", "ExpirationDate must be at least 1 day ahead")
        if expires > at + timedelta(days=36500):
            raise bad("InvalidParameterValue", "ExpirationDate is more than 36500 days ahead")
    if snapshot.status not in ("pending", "completed"):
        raise bad("IncorrectState", f"snapshot {snapshot.id} is {snapshot.status}")
    current = getattr(snapshot, "smartvault_lock", None)
    if current is not None and lock_state(current, at) == "compliance":
        if mode != "compliance" or cool_off is not None or expires < current["expires"]:
            raise bad(
                "SnapshotLocked",
                f"snapshot {snapshot.id} is locked in compliance mode: its lock can only be "
                "extended",
            )
    lock = {
        "mode": mode,
        "created": at,
        "start": at,
        "expires": expires,
        "duration_days": duration,
    }
    if cool_off is not None:
        lock["cool_off_hours"] = cool_off
        lock["cool_off_expires"] = at + timedelta(hours=cool_off)
    elif current is not None and lock_state(current, at) == "compliance":
        lock["created"] = current["created"]
    snapshot.smartvault_lock = lock
    info = lock_info(snapshot, lock, at)
    del info["OwnerId"]
    return ActionResult(info)


def unlock_snapshot(self):
    """EC2 UnlockSnapshot: governance, or compliance still cooling off."""
    snapshot = self.ec2_backend.get_snapshot(self._get_param("SnapshotId"))
    self.error_on_dryrun()
    lock = getattr(snapshot, "smartvault_lock", None)
    state = lock_state(lock, now()) if lock else "unlocked"
    if state == "compliance":
        raise bad(
            "SnapshotLocked",
            f"snapshot {snapshot.id} is locked in compliance mode past its cooling-off period",
        )
    if state in ("unlocked", "expired"):
        raise bad("InvalidParameterValue", f"snapshot {snapshot.id} is not locked")
    snapshot.smartvault_lock = None
    return ActionResult({"SnapshotId": snapshot.id})


def describe_locked_snapshots(self):
    """EC2 DescribeLockedSnapshots: every locked snapshot (expired locks too), by id and by
    the lock-state filter."""
    ids = set(self._get_param("SnapshotIds", []))
    filters = self._filters_from_querystring()
    states = set(filters.get("lock-state", []))
    at = now()
    found = []
    for snapshot in self.ec2_backend.snapshots.values():
        lock = getattr(snapshot, "smartvault_lock", None)
        if lock is None or (ids and snapshot.id not in ids):
            continue
        if states and lock_state(lock, at) not in states:
            continue
        found.append(lock_info(snapshot, lock, at))
    return ActionResult({"Snapshots": found})


ElasticBlockStore.lock_snapshot = lock_snapshot
ElasticBlockStore.unlock_snapshot = unlock_snapshot
ElasticBlockStore.describe_locked_snapshots = describe_locked_snapshots

delete_snapshot = EBSBackend.delete_snapshot


def delete_snapshot_unless_locked(self, snapshot_id):
    """DeleteSnapshot, refused while a lock protects the snapshot."""
    snapshot = self.snapshots.get(snapshot_id)
    lock = getattr(snapshot, "smartvault_lock", None) if snapshot else None
    if lock is not None and lock_state(lock, now()) != "expired":
        raise bad(
            "SnapshotLocked",
            f"The snapshot {snapshot_id} is locked ({lock_state(lock, now())}) until "
            f"{lock['expires'].isoformat()} and can't be deleted.",
        )
    return delete_snapshot(self, snapshot_id)


EBSBackend.delete_snapshot = delete_snapshot_unless_locked


# Recycle Bin ---------------------------------------------------------------------------------

RBIN_RULES = {}
RECYCLE_BIN = {}


class RecycleBinRule(CloudFormationModel):
    """An AWS::Rbin::Rule made by CloudFormation."""

    # moto files each model under its service by module name.
    __module__ = "moto.rbin.models"

    def __init__(self, account_id, region_name, rule_id, resource_type, tags, days):
        self.account_id = account_id
        self.region_name = region_name
        self.rule_id = rule_id
        self.resource_type = resource_type
        self.tags = tags
        self.days = days

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::Rbin::Rule"

    @property
    def physical_resource_id(self):
        return self.rule_id

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        tags = {t["ResourceTagKey"]: t["ResourceTagValue"]
                for t in properties.get("ResourceTags", [])}
        rule = cls(account_id, region_name, "rule-" + os.urandom(6).hex(),
                   properties["ResourceType"], tags,
                   int(properties["RetentionPeriod"]["RetentionPeriodValue"]))
        RBIN_RULES.setdefault((account_id, region_name), {})[rule.rule_id] = rule
        return rule

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                   account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):
        RBIN_RULES.get((account_id, region_name), {}).pop(resource_name, None)

    def delete(self, account_id, region_name):
        RBIN_RULES.get((self.account_id, self.region_name), {}).pop(self.rule_id, None)

    def is_created(self):
        return True


def bin_days(account_id, region_name, snapshot):
    """The longest retention of the rules that match `snapshot`, or None."""
    tags = {t["key"]: t["value"] for t in snapshot.get_tags()}
    days = [
        rule.days
        for rule in RBIN_RULES.get((account_id, region_name), {}).values()
        if rule.resource_type == "EBS_SNAPSHOT"
        and all(tags.get(key) == value for key, value in rule.tags.items())
    ]
    return max(days) if days else None


def binned(account_id, region_name):
    """This account's and region's bin, without what its retention let go."""
    entries = RECYCLE_BIN.setdefault((account_id, region_name), {})
    at = now()
    for snapshot_id in [i for i, e in entries.items() if e["exit"] <= at]:
        del entries[snapshot_id]
    return entries


def list_snapshots_in_recycle_bin(self):
    """EC2 ListSnapshotsInRecycleBin."""
    ids = set(self._get_param("SnapshotIds", []))
    entries = binned(self.current_account, self.region)
    return ActionResult({"Snapshots": [
        {
            "SnapshotId": snapshot_id,
            "RecycleBinEnterTime": entry["enter"],
            "RecycleBinExitTime": entry["exit"],
            "Description": entry["snapshot"].description,
            "VolumeId": entry["snapshot"].volume.id,
        }
        for snapshot_id, entry in entries.items()
        if not ids or snapshot_id in ids
    ]})


def restore_snapshot_from_recycle_bin(self):
    """EC2 RestoreSnapshotFromRecycleBin."""
    snapshot_id = self._get_param("SnapshotId")
    entries = binned(self.current_account, self.region)
    if snapshot_id not in entries:
        raise bad("InvalidSnapshot.NotFound",
                  f"The snapshot '{snapshot_id}' is not in the Recycle Bin")
    snapshot = entries.pop(snapshot_id)["snapshot"]
    self.ec2_backend.snapshots[snapshot_id] = snapshot
    return ActionResult({
        "SnapshotId": snapshot.id,
        "Description": snapshot.description,
        "Encrypted": snapshot.encrypted,
        "OwnerId": snapshot.owner_id,
        "State": snapshot.status,
        "VolumeId": snapshot.volume.id,
        "VolumeSize": snapshot.volume.size,
    })


ElasticBlockStore.list_snapshots_in_recycle_bin = list_snapshots_in_recycle_bin
ElasticBlockStore.restore_snapshot_from_recycle_bin = restore_snapshot_from_recycle_bin

delete_unless_locked = EBSBackend.delete_snapshot


def delete_snapshot_into_the_bin(self, snapshot_id):
    """DeleteSnapshot: refused while locked; into the bin when a rule keeps it."""
    snapshot = self.snapshots.get(snapshot_id)
    days = bin_days(self.account_id, self.region_name, snapshot) if snapshot else None
    deleted = delete_unless_locked(self, snapshot_id)
    if days is not None:
        at = now()
        binned(self.account_id, self.region_name)[snapshot_id] = {
            "snapshot": deleted,
            "enter": at,
            "exit": at + timedelta(days=days),
        }
    return deleted


EBSBackend.delete_snapshot = delete_snapshot_into_the_bin


# Snapshots shared across accounts -------------------------------------------------------------


class SharedView(Snapshot):
    """Another account's snapshot as the account it is shared with sees it: no tags."""

    __module__ = "moto.ec2.models"

    def get_tags(self):
        return []


def shared_view(snapshot):
    view = copy.copy(snapshot)
    view.__class__ = SharedView
    return view


def shared_with(snapshot, account):
    return account in snapshot.create_volume_permission_userids or (
        "all" in snapshot.create_volume_permission_groups
    )


def foreign_snapshots(account, region):
    """Snapshots of other accounts in `region` that `account` may create volumes from."""
    from moto.ec2.models import ec2_backends

    for other in list(ec2_backends.keys()):
        if other == account or region not in ec2_backends[other]:
            continue
        for snapshot in ec2_backends[other][region].snapshots.values():
            if shared_with(snapshot, account):
                yield snapshot


def describe_snapshots_across_accounts(self):
    """EC2 DescribeSnapshots with OwnerIds and RestorableByUserIds."""
    filters = self._filters_from_querystring()
    ids = self._get_param("SnapshotIds", [])
    account = self.current_account
    owners = {account if o == "self" else o for o in self._get_param("OwnerIds", [])}
    restorable = set(self._get_param("RestorableByUserIds", []))
    own = self.ec2_backend.describe_snapshots(filters=filters)
    foreign = [s for s in foreign_snapshots(account, self.region) if not owners or s.owner_id in owners]
    if filters:
        from moto.ec2.utils import generic_filter

        foreign = generic_filter(filters, foreign)
    found = [s for s in own if not owners or s.owner_id in owners]
    if restorable:
        def restorable_by(snapshot):
            for who in restorable:
                if who == "self" and (snapshot.owner_id == account or shared_with(snapshot, account)):
                    return True
                if who == "all" and "all" in snapshot.create_volume_permission_groups:
                    return True
                if who not in ("self", "all") and who in snapshot.create_volume_permission_userids:
                    return True
            return False

        found = [s for s in found if restorable_by(s)]
        foreign = [s for s in foreign if restorable_by(s)]
    elif not owners:
        # Without either, AWS lists the caller's own snapshots, those shared with it and public
        # ones; the shared ones are listed only when asked for by id, as here.
        foreign = [s for s in foreign if s.id in ids] if ids else []
    result = found + [shared_view(s) for s in foreign]
    if ids:
        result = [s for s in result if s.id in ids]
        if len(result) < len(set(ids)):
            from moto.ec2.exceptions import InvalidSnapshotIdError

            raise InvalidSnapshotIdError()
    return ActionResult({"Snapshots": result})


ElasticBlockStore.describe_snapshots = describe_snapshots_across_accounts

copy_snapshot = EBSBackend.copy_snapshot


def copy_snapshot_shared(self, source_snapshot_id, source_region, description, kms_key_id):
    """CopySnapshot, also of another account's snapshot shared with this one."""
    from moto.ec2.models import ec2_backends

    if source_snapshot_id in ec2_backends[self.account_id][source_region].snapshots:
        return copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id)
    for source in foreign_snapshots(self.account_id, source_region):
        if source.id == source_snapshot_id:
            from moto.ec2.utils import random_snapshot_id

            snapshot_id = random_snapshot_id()
            snapshot = Snapshot(self, snapshot_id, volume=source.volume, description=description,
                                encrypted=source.encrypted, kms_key_id=kms_key_id)
            self.snapshots[snapshot_id] = snapshot
            return snapshot
    from moto.ec2.exceptions import InvalidSnapshotIdError

    raise InvalidSnapshotIdError()


EBSBackend.copy_snapshot = copy_snapshot_shared


# `!Condition` in YAML templates ---------------------------------------------------------------

import moto.cloudformation.models as cfn_models  # noqa: E402
import moto.cloudformation.responses as cfn_responses  # noqa: E402
from moto.cloudformation.utils import yaml_tag_constructor  # noqa: E402


def yaml_tag_constructor_with_condition(loader, tag, node):
    """moto's short-form reader, with `!Condition Name` read as CloudFormation reads it."""
    if tag == "!Condition":
        return {"Condition": node.value}
    return yaml_tag_constructor(loader, tag, node)


cfn_models.yaml_tag_constructor = yaml_tag_constructor_with_condition
cfn_responses.yaml_tag_constructor = yaml_tag_constructor_with_condition


# EBS direct APIs on CreateSnapshots' snapshots --------------------------------------------------

import base64  # noqa: E402
import hashlib  # noqa: E402
import random  # noqa: E402

from moto.ebs.responses import EBSResponse  # noqa: E402

BLOCK_SIZE = 524288
# (account, region, snapshot id) -> (volume id, {block index: (kind, seed)}, {index: token})
SNAPSHOT_BLOCKS = {}


def block_bytes(kind, seed):
    """A block's 524,288 bytes: random from its seed (encrypted data looks like this), or text."""
    if kind == "random":
        return random.Random(seed).randbytes(BLOCK_SIZE)
    line = f"block {seed}: the quick brown fox jumps over the lazy dog\n".encode()
    return (line * (BLOCK_SIZE // len(line) + 1))[:BLOCK_SIZE]


create_ec2_snapshot = EBSBackend.create_snapshot


def create_snapshot_with_blocks(self, *args, **kwargs):
    """CreateSnapshot(s): the snapshot captures its volume's blocks as they are now."""
    snapshot = create_ec2_snapshot(self, *args, **kwargs)
    volume = snapshot.volume.id
    blocks = dict(VOLUME_BLOCKS.get((self.account_id, self.region_name, volume), {}))
    tokens = {index: os.urandom(12).hex() for index in blocks}
    SNAPSHOT_BLOCKS[(self.account_id, self.region_name, snapshot.id)] = (volume, blocks, tokens)
    return snapshot


EBSBackend.create_snapshot = create_snapshot_with_blocks


def ebs_bad(message):
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError("ValidationException", message)


def captured(response, snapshot_id):
    return SNAPSHOT_BLOCKS.get((response.current_account, response.region, snapshot_id))


def page(response, indexes):
    """The indexes of one page: from StartingBlockIndex or the token, at most MaxResults."""
    limit = response._get_int_param("MaxResults") or 10000
    if not 100 <= limit <= 10000:
        raise ebs_bad(f"MaxResults {limit} is not 100 to 10000")
    token = response._get_param("NextToken")
    start = response._get_int_param("StartingBlockIndex") or 0
    if token:
        try:
            start = int(base64.b64decode(token).decode().removeprefix("next:"))
        except Exception:
            raise ebs_bad("the NextToken is not one this API gave")
    chosen = [i for i in sorted(indexes) if i >= start]
    more = chosen[limit:]
    token = base64.b64encode(f"next:{more[0]}".encode()).decode() if more else None
    return chosen[:limit], token


def volume_size(response, snapshot_id):
    return response.ebs_backend.ec2_backend.get_snapshot(snapshot_id).volume.size


def expiry():
    return now() + timedelta(days=7)


list_snapshot_blocks = EBSResponse.list_snapshot_blocks


def list_snapshot_blocks_captured(self):
    """EBS ListSnapshotBlocks of a CreateSnapshots snapshot."""
    snapshot_id = self._get_param("SnapshotId")
    found = captured(self, snapshot_id)
    if found is None:
        return list_snapshot_blocks(self)
    _, blocks, tokens = found
    chosen, token = page(self, blocks)
    result = {
        "Blocks": [{"BlockIndex": i, "BlockToken": tokens[i]} for i in chosen],
        "ExpiryTime": expiry(),
        "VolumeSize": volume_size(self, snapshot_id),
        "BlockSize": BLOCK_SIZE,
    }
    if token:
        result["NextToken"] = token
    return ActionResult(result)


list_changed_blocks = EBSResponse.list_changed_blocks


def list_changed_blocks_captured(self):
    """EBS ListChangedBlocks between two CreateSnapshots snapshots of one volume."""
    first_id = self._get_param("FirstSnapshotId")
    second_id = self._get_param("SecondSnapshotId")
    second = captured(self, second_id)
    if second is None:
        return list_changed_blocks(self)
    first = captured(self, first_id) if first_id else (second[0], {}, {})
    if first is None:
        raise ebs_bad(f"snapshot {first_id} has no blocks this API can read")
    if first[0] != second[0]:
        raise ebs_bad(
            f"snapshots {first_id} and {second_id} are not of the same volume lineage"
        )
    (_, one, one_tokens), (_, two, two_tokens) = first, second
    changed = {i for i in set(one) | set(two) if one.get(i) != two.get(i)}
    chosen, token = page(self, changed)
    blocks = []
    for i in chosen:
        block = {"BlockIndex": i}
        if i in one:
            block["FirstBlockToken"] = one_tokens[i]
        if i in two:
            block["SecondBlockToken"] = two_tokens[i]
        blocks.append(block)
    result = {
        "ChangedBlocks": blocks,
        "ExpiryTime": expiry(),
        "VolumeSize": volume_size(self, second_id),
        "BlockSize": BLOCK_SIZE,
    }
    if token:
        result["NextToken"] = token
    return ActionResult(result)


get_snapshot_block = EBSResponse.get_snapshot_block


def get_snapshot_block_captured(self):
    """EBS GetSnapshotBlock of a CreateSnapshots snapshot, by index and its block token."""
    snapshot_id = self._get_param("SnapshotId")
    found = captured(self, snapshot_id)
    if found is None:
        return get_snapshot_block(self)
    _, blocks, tokens = found
    index = self._get_int_param("BlockIndex")
    if index not in blocks or tokens[index] != self._get_param("BlockToken"):
        raise ebs_bad(f"block {index} of {snapshot_id} has no such token")
    data = block_bytes(*blocks[index])
    return ActionResult({
        "DataLength": len(data),
        "BlockData": data,
        "Checksum": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "ChecksumAlgorithm": "SHA256",
    })


EBSResponse.list_snapshot_blocks = list_snapshot_blocks_captured
EBSResponse.list_changed_blocks = list_changed_blocks_captured
EBSResponse.get_snapshot_block = get_snapshot_block_captured


# The snapshot archive tier and fast snapshot restore, as AWS documents them -------------------
#
# moto 5.2.5 flips a snapshot's tier at once (no archival or restore time, no check) and has no
# fast snapshot restore. Below, on the lock clock (so a test can move time), as the EBS user
# guide documents: only a completed snapshot the account owns, not used by a registered AMI
# and not already archived, can be archived (IncorrectState, InvalidSnapshot.InUse); archiving
# takes SMARTVAULT tier_seconds["archive"] (default 3,600), ends its sharing and its fast
# snapshot restores, and leaves it usable until archival-completed; an archived snapshot makes
# no volume (IncorrectState) until restored; RestoreSnapshotTier of an archived snapshot
# restores it temporarily (TemporaryRestoreDays, 1-180) or permanently after
# tier_seconds["restore"] (default 6 hours; AWS: up to 72), and a temporarily restored one can
# be given another period or made permanent; DescribeSnapshotTierStatus and DescribeSnapshots
# report it. EnableFastSnapshotRestores takes a zone of the region and snapshots the account
# owns or is shared that are not archived, at most SMARTVAULT fsr_limit (default 5) snapshots
# enabled in a region at once (the Service Quotas default), each state going enabling →
# optimizing → enabled over tier_seconds["optimize"] (default 3,600: 60 minutes per TiB);
# DisableFastSnapshotRestores goes to disabled; deleting or archiving a snapshot disables them.

# (account, region, snapshot id) -> {"tier", "status", "started", "done", "restore": {...}}
TIERS = {}
# (account, region, snapshot id, zone) -> {"state", "enabled_at"}
FAST_RESTORES = {}
TIER_SECONDS = {"archive": 3600.0, "restore": 6 * 3600.0, "optimize": 3600.0}
FSR_LIMIT = {"snapshots": 5}


def tier_of(backend, snapshot):
    """The snapshot's tier state now (the lock clock), its attributes set to match."""
    key = (backend.account_id, backend.region_name, snapshot.id)
    state = TIERS.get(key)
    if state is None:
        return None
    at = now()
    if state["status"] == "archival-in-progress" and at >= state["done"]:
        state["status"] = "archival-completed"
        state["tier"] = "archive"
    restore = state.get("restore")
    if restore and state["status"].endswith("restore-in-progress") and at >= restore["done"]:
        if restore["permanent"]:
            state["status"] = "permanent-restore-completed"
            state["tier"] = "standard"
            restore["expiry"] = None
        else:
            # Usable again (DescribeSnapshots: StorageTier standard, RestoreExpiryTime set).
            state["status"] = "temporary-restore-completed"
            state["tier"] = "standard"
            restore["expiry"] = restore["done"] + timedelta(days=restore["days"])
    if (
        restore
        and state["status"] == "temporary-restore-completed"
        and restore.get("expiry")
        and at >= restore["expiry"]
    ):
        # The temporary copy expired: archived again.
        state["status"] = "archival-completed"
        state["tier"] = "archive"
        state["restore"] = None
        restore = None
    snapshot.storage_tier = state["tier"]
    snapshot.last_tiering_start_time = state["started"]
    snapshot.last_tiering_operation_status = state["status"]
    snapshot.last_tiering_progress = 100 if state["status"].endswith("completed") else 50
    snapshot.archival_complete_time = state["done"] if state["tier"] == "archive" or restore else None
    snapshot.restore_expiry_time = restore.get("expiry") if restore else None
    return state


def usable(backend, snapshot):
    """Whether a volume can be made from it: not archived, or restored."""
    state = tier_of(backend, snapshot)
    if state is None:
        return True
    return state["status"] in (
        "archival-in-progress",
        "temporary-restore-completed",
        "permanent-restore-completed",
    )


def modify_snapshot_tier_as_aws(self, snapshot_id, storage_tier):
    snapshot = self.get_snapshot(snapshot_id)
    if storage_tier != "archive":
        raise bad("InvalidParameterValue", f"StorageTier {storage_tier}: only archive")
    if snapshot.owner_id != self.account_id:
        raise bad("IncorrectState", f"{snapshot_id} is not owned by this account")
    if snapshot.status != "completed":
        raise bad("IncorrectState", f"{snapshot_id} is {snapshot.status}, not completed")
    if snapshot.from_ami and snapshot.from_ami in getattr(self, "amis", {}):
        raise bad("InvalidSnapshot.InUse", f"{snapshot_id} is used by {snapshot.from_ami}")
    state = tier_of(self, snapshot)
    if state is not None and state["status"] not in ("permanent-restore-completed",):
        raise bad("IncorrectState", f"{snapshot_id} is {state['status']}")
    at = now()
    TIERS[(self.account_id, self.region_name, snapshot_id)] = {
        "tier": "standard",
        "status": "archival-in-progress",
        "started": at,
        "done": at + timedelta(seconds=TIER_SECONDS["archive"]),
        "restore": None,
    }
    # Sharing and fast snapshot restore end.
    snapshot.create_volume_permission_groups = set()
    snapshot.create_volume_permission_userids = set()
    for key in list(FAST_RESTORES):
        if key[:3] == (self.account_id, self.region_name, snapshot_id):
            FAST_RESTORES.pop(key)
    tier_of(self, snapshot)
    return snapshot


def restore_snapshot_tier_as_aws(self, snapshot_id, temporary_restore_days=None,
                                 permanent_restore=False):
    snapshot = self.get_snapshot(snapshot_id)
    state = tier_of(self, snapshot)
    permanent = str(permanent_restore).lower() == "true"
    if state is None or state["status"] in ("archival-in-progress",
                                            "permanent-restore-completed",
                                            "permanent-restore-in-progress"):
        raise bad("IncorrectState", f"{snapshot_id} is not archived")
    if not permanent:
        days = int(temporary_restore_days or 0)
        if not 1 <= days <= 180:
            raise bad("InvalidParameterValue", "TemporaryRestoreDays must be 1-180")
    at = now()
    restore = state.get("restore")
    if state["status"] == "temporary-restore-completed" and restore:
        # A restored copy: another period (from now), or made permanent at once.
        if permanent:
            state["status"] = "permanent-restore-completed"
            state["tier"] = "standard"
            restore.update(permanent=True, expiry=None)
        else:
            restore.update(days=days, expiry=at + timedelta(days=days))
    else:
        state["restore"] = {
            "started": at,
            "done": at + timedelta(seconds=TIER_SECONDS["restore"]),
            "permanent": permanent,
            "days": None if permanent else days,
            "expiry": None,
        }
        state["status"] = ("permanent" if permanent else "temporary") + "-restore-in-progress"
    snapshot.restore_start_time = state["restore"]["started"]
    tier_of(self, snapshot)
    return snapshot


def describe_snapshot_tier_status_as_aws(self, filters=None):
    snapshots = describe_snapshot_tier_status(self, filters)
    for snapshot in snapshots:
        tier_of(self, snapshot)
    return snapshots


def describe_snapshots_with_tiers(self, *args, **kwargs):
    snapshots = describe_ebs_snapshots(self, *args, **kwargs)
    for snapshot in snapshots:
        if snapshot.ec2_backend is self:
            tier_of(self, snapshot)
    return snapshots


def create_volume_unless_archived(self, *args, **kwargs):
    snapshot_id = kwargs.get("snapshot_id") if "snapshot_id" in kwargs else (
        args[2] if len(args) > 2 else None)
    if snapshot_id:
        snapshot = self.get_snapshot(snapshot_id)
        if not usable(self, snapshot):
            raise bad("IncorrectState", f"{snapshot_id} is in the archive tier; restore it first")
    return create_ebs_volume(self, *args, **kwargs)


def delete_snapshot_with_tiers(self, snapshot_id):
    deleted = delete_snapshot_before_tiers(self, snapshot_id)
    TIERS.pop((self.account_id, self.region_name, snapshot_id), None)
    for key in list(FAST_RESTORES):
        if key[:3] == (self.account_id, self.region_name, snapshot_id):
            FAST_RESTORES.pop(key)
    return deleted


def fast_restore_state(key):
    entry = FAST_RESTORES[key]
    elapsed = (now() - entry["since"]).total_seconds()
    if entry["state"] in ("enabling", "optimizing"):
        if elapsed >= TIER_SECONDS["optimize"]:
            entry["state"] = "enabled"
        elif elapsed >= 1:
            entry["state"] = "optimizing"
    return entry["state"]


def fast_restore_item(key):
    account, region, snapshot_id, zone = key
    entry = FAST_RESTORES[key]
    state = fast_restore_state(key)
    return {
        "SnapshotId": snapshot_id,
        "AvailabilityZone": zone,
        "State": state,
        "StateTransitionReason": "Client.UserInitiated",
        "OwnerId": account,
        "EnablingTime": entry["since"].isoformat(),
    }


def enable_fast_snapshot_restores(self):
    backend = self.ec2_backend
    zones = self._get_param("AvailabilityZones", [])
    snapshot_ids = self._get_param("SourceSnapshotIds", [])
    region_zones = {z.name for z in backend.describe_availability_zones()}
    successful, unsuccessful = [], []
    for snapshot_id in snapshot_ids:
        for zone in zones:
            error = None
            try:
                snapshot = backend.get_snapshot(snapshot_id)
            except Exception:
                snapshot, error = None, ("InvalidSnapshot.NotFound", f"{snapshot_id} does not exist")
            if error is None and zone not in region_zones:
                error = ("InvalidParameterValue", f"{zone} is not a zone of {backend.region_name}")
            if error is None and not usable(backend, snapshot):
                error = ("IncorrectState", f"{snapshot_id} is in the archive tier")
            key = (backend.account_id, backend.region_name, snapshot_id, zone)
            enabled = {k[2] for k in FAST_RESTORES
                       if k[:2] == key[:2] and fast_restore_state(k) != "disabled"}
            if error is None and snapshot_id not in enabled and len(enabled) >= FSR_LIMIT["snapshots"]:
                error = ("FastSnapshotRestoreLimitExceeded",
                         f"at most {FSR_LIMIT['snapshots']} snapshots enabled for fast snapshot restore in this region")
            if error is not None:
                unsuccessful.append({
                    "SnapshotId": snapshot_id,
                    "FastSnapshotRestoreStateErrors": [
                        {"AvailabilityZone": zone, "Error": {"Code": error[0], "Message": error[1]}}
                    ],
                })
                continue
            if key not in FAST_RESTORES or FAST_RESTORES[key]["state"] == "disabled":
                FAST_RESTORES[key] = {"state": "enabling", "since": now()}
            successful.append(fast_restore_item(key))
    return ActionResult({"Successful": successful, "Unsuccessful": unsuccessful})


def disable_fast_snapshot_restores(self):
    backend = self.ec2_backend
    zones = self._get_param("AvailabilityZones", [])
    snapshot_ids = self._get_param("SourceSnapshotIds", [])
    successful = []
    for snapshot_id in snapshot_ids:
        for zone in zones:
            key = (backend.account_id, backend.region_name, snapshot_id, zone)
            if key in FAST_RESTORES:
                item = fast_restore_item(key)
                FAST_RESTORES.pop(key)
                item["State"] = "disabled"
                successful.append(item)
    return ActionResult({"Successful": successful, "Unsuccessful": []})


def describe_fast_snapshot_restores(self):
    backend = self.ec2_backend
    filters = self._filters_from_querystring() or {}
    items = []
    for key in sorted(FAST_RESTORES):
        if key[:2] != (backend.account_id, backend.region_name):
            continue
        item = fast_restore_item(key)
        wanted = {
            "snapshot-id": item["SnapshotId"],
            "availability-zone": item["AvailabilityZone"],
            "state": item["State"],
            "owner-id": item["OwnerId"],
        }
        if all(wanted.get(name) in values for name, values in filters.items()):
            items.append(item)
    return ActionResult({"FastSnapshotRestores": items})


describe_snapshot_tier_status = EBSBackend.describe_snapshot_tier_status
describe_ebs_snapshots = EBSBackend.describe_snapshots
create_ebs_volume = EBSBackend.create_volume
delete_snapshot_before_tiers = EBSBackend.delete_snapshot
EBSBackend.modify_snapshot_tier = modify_snapshot_tier_as_aws
EBSBackend.restore_snapshot_tier = restore_snapshot_tier_as_aws
EBSBackend.describe_snapshot_tier_status = describe_snapshot_tier_status_as_aws
EBSBackend.describe_snapshots = describe_snapshots_with_tiers
EBSBackend.create_volume = create_volume_unless_archived
EBSBackend.delete_snapshot = delete_snapshot_with_tiers
ElasticBlockStore.enable_fast_snapshot_restores = enable_fast_snapshot_restores
ElasticBlockStore.disable_fast_snapshot_restores = disable_fast_snapshot_restores
ElasticBlockStore.describe_fast_snapshot_restores = describe_fast_snapshot_restores


# Systems Manager Run Command, as AWS documents it --------------------------------------------
#
# moto 5.2.5's SendCommand takes any document and instance, and every invocation is "Success"
# at once; it has no ListCommandInvocations or DescribeInstanceInformation. Below: an instance
# is managed (SSM Agent online) unless a test says otherwise, SendCommand takes 1 to 50
# instance ids, all managed (InvalidInstanceId otherwise), an existing document (InvalidDocument)
# and only the parameters that document declares, with their allowed values
# (InvalidParameters); each invocation ends as the test scripted that instance's stage (the
# document's `command` parameter, or `vss` for AWSEC2-CreateVssSnapshot): success, failed,
# timed_out, in_progress (never ends), delay:<seconds> (in progress, then success), fail_once
# (fails the first time it is sent after the test scripted it, succeeds after); a stage listed
# in `lose` is carried out but its next SendCommand answered 500 (a lost answer). A VSS command that succeeds makes a
# snapshot of each of the instance's volumes (the boot volume unless ExcludeBootVolume) tagged
# with its `tags` parameter (Key=k,Value=v;...) and AppConsistent=true. Tests script instances
# with POST /moto-api/config {"smartvault": {"ssm_instances": [{"account", "region",
# "instance_id", "managed": true, "platform": "Linux", "pre-script": "success", "post-script":
# ..., "vss": ..., "lose": ["pre-script"]}]}}, and make a document taking DLM's stage parameters
# with {"smartvault": {"ssm_documents": [{"account", "region", "name"}]}}.

import time  # noqa: E402

from moto.ec2.models import ec2_backends  # noqa: E402
from moto.ssm.models import ssm_backends  # noqa: E402
from moto.ssm.responses import SimpleSystemManagerResponse  # noqa: E402

# (account, region, instance id) -> the test's script of that instance.
SSM_INSTANCES = {}
# command id -> {"account", "region", "document", "stage", "requested", "invocations": {id:
# {"behaviour", "done"}}}
SSM_COMMANDS = {}
VSS_DOCUMENT = "AWSEC2-CreateVssSnapshot"


def ssm_bad(code, message, status=400):
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    return error


def ssm_script(account, region, instance_id):
    return SSM_INSTANCES.get((account, region, instance_id), {})


def ec2_instance(account, region, instance_id):
    backend = ec2_backends[account][region]
    for reservation in backend.reservations.values():
        for instance in reservation.instances:
            if instance.id == instance_id:
                return instance
    return None


def is_managed(account, region, instance_id):
    instance = ec2_instance(account, region, instance_id)
    return (
        instance is not None
        and instance.state == "running"
        and ssm_script(account, region, instance_id).get("managed", True)
    )


def platform_of(account, region, instance_id):
    script = ssm_script(account, region, instance_id)
    if "platform" in script:
        return script["platform"]
    instance = ec2_instance(account, region, instance_id)
    return "Windows" if instance is not None and instance.platform == "windows" else "Linux"


def declared_parameters(backend, name):
    """The parameters a document of this account declares, or None for AWS's own."""
    documents = backend._documents.get(name)
    if documents is None:
        return None
    content = documents.get_default_version().content
    if isinstance(content, dict):
        # Made by CloudFormation, whose Content moto keeps as the template's mapping.
        parsed = content
    else:
        try:
            parsed = json.loads(content)
        except ValueError:
            import yaml

            parsed = yaml.safe_load(content)
    return parsed.get("parameters", {}) or {}


def send_command_as_aws(self):
    """SendCommand, checked as AWS checks it, its invocations as the test scripted them."""
    account, region = self.current_account, self.region
    backend = ssm_backends[account][region]
    document = self._get_param("DocumentName") or ""
    name = document.rsplit("document/", 1)[-1]
    instance_ids = self._get_param("InstanceIds", [])
    parameters = self._get_param("Parameters", {}) or {}
    if not 1 <= len(instance_ids) <= 50:
        raise ssm_bad(
            "ValidationException",
            f"1 validation error detected: Value at 'instanceIds' failed to satisfy "
            f"constraint: Member must have length between 1 and 50 ({len(instance_ids)})",
        )
    unmanaged = [i for i in instance_ids if not is_managed(account, region, i)]
    if unmanaged:
        raise ssm_bad("InvalidInstanceId", f"Instances {unmanaged} not in a valid state")
    declared = declared_parameters(backend, name)
    if declared is None and not name.startswith("AWS"):
        raise ssm_bad("InvalidDocument", f"Document {document} does not exist")
    if declared is not None:
        for key, values in parameters.items():
            spec = declared.get(key)
            if spec is None:
                raise ssm_bad("InvalidParameters", f"parameter {key} is not in document {name}")
            allowed = spec.get("allowedValues")
            if allowed and any(v not in allowed for v in values):
                raise ssm_bad("InvalidParameters", f"{key}={values} is not one of {allowed}")
    stage = "vss" if name == VSS_DOCUMENT else (parameters.get("command") or [""])[0]
    answer = send_command(self)
    command_id = backend._commands[-1].command_id
    invocations = {}
    lost = False
    for instance_id in instance_ids:
        script = ssm_script(account, region, instance_id)
        behaviour = script.get(stage, "success")
        # The first send after the test scripted it fails (or loses its answer); later ones
        # do not.
        if behaviour == "fail_once":
            behaviour = "success" if script.get("failed_once") else "failed"
            script["failed_once"] = True
        invocations[instance_id] = {"behaviour": behaviour, "done": False}
        if stage in script.get("lose", []):
            script["lose"] = [s for s in script["lose"] if s != stage]
            lost = True
    SSM_COMMANDS[command_id] = {
        "account": account,
        "region": region,
        "document": name,
        "stage": stage,
        "parameters": parameters,
        "requested": time.time(),
        "invocations": invocations,
    }
    if lost:
        raise ssm_bad("InternalServerError", "the answer was lost (scripted by the test)", 500)
    return answer


def invocation_status(command, instance_id):
    """(Status, StatusDetails) of one invocation now, carrying out a VSS command's snapshots
    when it succeeds."""
    invocation = command["invocations"][instance_id]
    behaviour = invocation["behaviour"]
    elapsed = time.time() - command["requested"]
    if behaviour.startswith("delay:"):
        status = "Success" if elapsed >= float(behaviour.split(":", 1)[1]) else "InProgress"
    else:
        status = {
            "success": "Success",
            "failed": "Failed",
            "timed_out": "TimedOut",
            "in_progress": "InProgress",
        }[behaviour]
    if status == "Success" and command["stage"] == "vss" and not invocation["done"]:
        invocation["done"] = True
        make_vss_snapshots(command, instance_id)
    details = {"TimedOut": "ExecutionTimedOut"}.get(status, status)
    return status, details


def make_vss_snapshots(command, instance_id):
    account, region = command["account"], command["region"]
    backend = ec2_backends[account][region]
    instance = ec2_instance(account, region, instance_id)
    parameters = command["parameters"]
    exclude_boot = (parameters.get("ExcludeBootVolume") or ["False"])[0] == "True"
    description = (parameters.get("description") or [""])[0]
    tags = {"AppConsistent": "true"}
    for pair in filter(None, (parameters.get("tags") or [""])[0].split(";")):
        key, value = pair.split(",", 1)
        tags[key.removeprefix("Key=")] = value.removeprefix("Value=")
    for device, mapping in instance.block_device_mapping.items():
        if exclude_boot and device == instance.root_device_name:
            continue
        snapshot = backend.create_snapshot(mapping.volume_id, description)
        backend.create_tags([snapshot.id], tags)


def list_command_invocations(self):
    """ListCommandInvocations of one command (or one instance), MaxResults 1-50 a page."""
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    limit = int(self._get_param("MaxResults", 50))
    if not 1 <= limit <= 50:
        raise ssm_bad("ValidationException", f"MaxResults {limit} is outside 1-50")
    start = int(self._get_param("NextToken") or 0)
    rows = []
    for cid, command in SSM_COMMANDS.items():
        if command_id and cid != command_id:
            continue
        if (command["account"], command["region"]) != (self.current_account, self.region):
            continue
        for iid in command["invocations"]:
            if instance_id and iid != instance_id:
                continue
            status, details = invocation_status(command, iid)
            rows.append({
                "CommandId": cid,
                "InstanceId": iid,
                "DocumentName": command["document"],
                "Status": status,
                "StatusDetails": details,
            })
    page_rows = rows[start:start + limit]
    result = {"CommandInvocations": page_rows}
    if start + limit < len(rows):
        result["NextToken"] = str(start + limit)
    return json.dumps(result)


def get_command_invocation_as_scripted(self):
    command = SSM_COMMANDS.get(self._get_param("CommandId"))
    instance_id = self._get_param("InstanceId")
    if command is None or instance_id not in command["invocations"]:
        raise ssm_bad("InvocationDoesNotExist", "no such invocation")
    status, details = invocation_status(command, instance_id)
    return json.dumps({
        "CommandId": self._get_param("CommandId"),
        "InstanceId": instance_id,
        "DocumentName": command["document"],
        "Status": status,
        "StatusDetails": details,
    })


def describe_instance_information(self):
    """DescribeInstanceInformation filtered by InstanceIds: the managed instances, Online."""
    account, region = self.current_account, self.region
    limit = int(self._get_param("MaxResults", 50))
    if not 5 <= limit <= 50:
        raise ssm_bad("ValidationException", f"MaxResults {limit} is outside 5-50")
    wanted = None
    for filter_ in self._get_param("Filters", []) or []:
        if filter_.get("Key") == "InstanceIds":
            wanted = filter_.get("Values", [])
    backend = ec2_backends[account][region]
    ids = sorted(
        instance.id
        for reservation in backend.reservations.values()
        for instance in reservation.instances
        if wanted is None or instance.id in wanted
    )
    managed = [i for i in ids if is_managed(account, region, i)]
    start = int(self._get_param("NextToken") or 0)
    rows = [
        {
            "InstanceId": i,
            "PingStatus": "Online",
            "PlatformType": platform_of(account, region, i),
            "ResourceType": "EC2Instance",
        }
        for i in managed[start:start + limit]
    ]
    result = {"InstanceInformationList": rows}
    if start + limit < len(managed):
        result["NextToken"] = str(start + limit)
    return json.dumps(result)


send_command = SimpleSystemManagerResponse.send_command
SimpleSystemManagerResponse.send_command = send_command_as_aws
SimpleSystemManagerResponse.list_command_invocations = list_command_invocations
SimpleSystemManagerResponse.get_command_invocation = get_command_invocation_as_scripted
SimpleSystemManagerResponse.describe_instance_information = describe_instance_information


# Reset clears what the patches keep too ---------------------------------------------------------

moto_reset = MotoAPIBackend.reset


def reset_with_patches(self):
    """moto's reset, and the state kept above: volume and snapshot blocks, the Recycle Bin and
    its rules, the lock clock."""
    moto_reset(self)
    for kept in (VOLUME_BLOCKS, SNAPSHOT_BLOCKS, RBIN_RULES, RECYCLE_BIN, SSM_INSTANCES,
                 SSM_COMMANDS, TIERS, FAST_RESTORES):
        kept.clear()
    CLOCK["offset_seconds"] = 0.0
    TIER_SECONDS.update({"archive": 3600.0, "restore": 6 * 3600.0, "optimize": 3600.0})
    FSR_LIMIT["snapshots"] = 5


MotoAPIBackend.reset = reset_with_patches

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
