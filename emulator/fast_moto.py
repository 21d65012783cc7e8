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

Usage: python fast_moto.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import json
import os
import sys

import moto.awslambda.urls
import moto.server
from moto.awslambda.responses import LambdaResponse
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult
from moto.ec2.models.core import TaggedEC2Resource
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

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
