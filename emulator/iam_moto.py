"""Runs moto_server so that, once IAM enforcement is on, it judges SmartVault's policies as AWS would.

Test-only. moto 5.2.5 has two gaps that keep it from judging a least-privilege policy, and this
launcher closes both without touching what moto stores or answers:

1. Signatures. moto rebuilds a form-encoded body from the parsed form before recomputing the
   SigV4 signature, so a request whose values need percent-encoding (a snapshot description, an
   SNS message, a CloudFormation template) fails with SignatureDoesNotMatch/AuthFailure; and it
   signs a bodiless GET as if its headers were a form. A WSGI wrapper keeps the body as it
   arrived, and the signature is checked over exactly those bytes.
2. Resources. For every service but S3 moto checks a policy against the resource "*", so a
   statement scoped to ARNs never matches. For the actions SmartVault makes, the checks below name
   the resources AWS authorizes them against (the Service Authorization Reference), and each one
   is checked; an action not listed is still checked against "*". Among them: EC2's snapshot
   writes against the snapshot (CopySnapshot against its source and the new copy; CreateTags
   against each resource tagged), the EBS
   direct APIs' reads against the snapshots read, Systems Manager's SendCommand against its
   document and each instance, and sts:AssumeRole against the role assumed. A stack set's calls are
   checked against its `stackset/<name>:<id>` ARN (CreateStackSet, which names no resource,
   against "*").

3. Wildcards. moto turns a resource pattern into a regular expression by replacing `*` only, so
   IAM's `?` (any one character) becomes a regex quantifier (a policy with `????` fails with
   HTTP 500) and a `.` matches anything. Patterns are matched below as IAM matches them.

Policy conditions stay unevaluated, as in plain moto; the tests assert them on the templates.
A CloudFormation call that passes a RoleARN is also checked for iam:PassRole on that role, which
AWS requires and moto skips.

Usage: python iam_moto.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import io
import re
import sys
from urllib.parse import unquote, urlparse

import fast_moto  # noqa: F401  (moto's constant-time EC2 tag lookup, as in every test)
import moto.server
from moto.cloudformation.models import cloudformation_backends
from moto.core.authorization import ActionAuthenticatorMixin
from moto.ec2.models import ec2_backends
from moto.iam.access_control import IAMPolicyStatement, IAMRequest
from moto import settings

RAW_BODY = "smartvault.raw_body"


class KeepRawBody:
    """Keeps a form-encoded request's body as it arrived, for the signature check."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        content_type = environ.get("CONTENT_TYPE", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length and content_type.startswith("application/x-www-form-urlencoded"):
            raw = environ["wsgi.input"].read(length)
            environ[RAW_BODY] = raw
            environ["wsgi.input"] = io.BytesIO(raw)
        return self.app(environ, start_response)


def first(response, key):
    values = response.querystring.get(key) or [None]
    return values[0]


def ec2_checks(response, action, region, account):
    snapshots = f"arn:aws:ec2:{region}::snapshot/"
    if action == "CreateSnapshots":
        instance_id = first(response, "InstanceSpecification.InstanceId")
        backend = ec2_backends[account][region]
        volumes = sorted(
            volume.id
            for volume in backend.volumes.values()
            if volume.attachment and volume.attachment.instance.id == instance_id
        )
        checks = [(action, f"arn:aws:ec2:{region}:{account}:instance/{instance_id}")]
        checks += [(action, f"arn:aws:ec2:{region}:{account}:volume/{v}") for v in volumes]
        checks.append((action, snapshots + "*"))
        if any(key.startswith("TagSpecification.") for key in response.querystring):
            # Tags given at creation are authorized as ec2:CreateTags on the new snapshots.
            checks.append(("CreateTags", snapshots + "*"))
        return checks
    if action == "CreateTags":
        # Against each resource tagged: a snapshot's ARN has no account, a volume's and an
        # instance's do.
        kinds = {"snap": "snapshot", "vol": "volume", "i": "instance"}
        checks = []
        for key, values in sorted(response.querystring.items()):
            if not key.startswith("ResourceId."):
                continue
            resource = values[0]
            kind = kinds.get(resource.split("-")[0])
            if kind == "snapshot":
                checks.append((action, snapshots + resource))
            elif kind:
                checks.append((action, f"arn:aws:ec2:{region}:{account}:{kind}/{resource}"))
            else:
                checks.append((action, "*"))
        return checks or [(action, "*")]
    if action in ("DeleteSnapshot", "LockSnapshot", "UnlockSnapshot", "ModifySnapshotAttribute"):
        return [(action, snapshots + first(response, "SnapshotId"))]
    if action == "CopySnapshot":
        # The source snapshot in its region and the new one here; tags given at creation are
        # authorized as ec2:CreateTags on the new snapshot.
        source = first(response, "SourceRegion") or region
        checks = [
            (action, f"arn:aws:ec2:{source}::snapshot/" + first(response, "SourceSnapshotId")),
            (action, snapshots + "*"),
        ]
        if any(key.startswith("TagSpecification.") for key in response.querystring):
            checks.append(("CreateTags", snapshots + "*"))
        return checks
    return [(action, "*")]


def ebs_checks(response, action, region, account):
    """The EBS direct APIs, against the snapshots they read: the one in the path and, for
    ListChangedBlocks, the first one compared (the snapshot resource of the Service
    Authorization Reference's `ebs:` actions is EC2's snapshot ARN)."""
    snapshots = f"arn:aws:ec2:{region}::snapshot/"
    parts = response.raw_path.split("/")
    if len(parts) > 2 and parts[1] == "snapshots" and parts[2]:
        checks = [(action, snapshots + unquote(parts[2]))]
        other = first(response, "firstSnapshotId")
        if other:
            checks.append((action, snapshots + other))
        return checks
    return [(action, "*")]


def ssm_checks(response, action, region, account):
    """Run Command's SendCommand against its document (by ARN; a name is this account's
    document, or AWS's own for an `AWS` name) and each instance it names, as the Service
    Authorization Reference lists them; the other calls against "*"."""
    if action != "SendCommand":
        return [(action, "*")]
    document = response._get_param("DocumentName") or ""
    if not document.startswith("arn:"):
        owner = "" if document.startswith("AWS") else account
        document = f"arn:aws:ssm:{region}:{owner}:document/{document}"
    checks = [(action, document)]
    for instance in response._get_param("InstanceIds", []) or []:
        checks.append((action, f"arn:aws:ec2:{region}:{account}:instance/{instance}"))
    return checks


def sts_checks(response, action, region, account):
    if action == "AssumeRole":
        return [(action, first(response, "RoleArn"))]
    return [(action, "*")]


def stack_arn(region, account, name):
    if name.startswith("arn:"):
        return name
    backend = cloudformation_backends[account][region]
    for stack in backend.stacks.values():
        if stack.name == name and stack.status != "DELETE_COMPLETE":
            return stack.stack_id
    return f"arn:aws:cloudformation:{region}:{account}:stack/{name}/*"


def stack_set_arn(region, account, name):
    """A stack set's ARN (`stackset/<name>:<id>`), as AWS authorizes its calls against it."""
    if name.startswith("arn:"):
        return name
    backend = cloudformation_backends[account][region]
    for stack_set in backend.stacksets.values():
        if stack_set.name == name and stack_set.status != "DELETED":
            return stack_set.arn
    return f"arn:aws:cloudformation:{region}:{account}:stackset/{name}:*"


def cloudformation_checks(response, action, region, account):
    name = first(response, "StackName")
    stack_set = first(response, "StackSetName")
    if stack_set is not None and action != "CreateStackSet":
        checks = [(action, stack_set_arn(region, account, stack_set))]
    else:
        checks = [(action, "*" if name is None else stack_arn(region, account, name))]
    # A self-managed stack set names the administration role it acts as: iam:PassRole, as on
    # AWS.
    admin_role = first(response, "AdministrationRoleARN")
    if admin_role is not None:
        checks.append(("iam:PassRole", admin_role))
    # A call that hands CloudFormation a role to act with needs iam:PassRole on that role, as
    # on AWS; moto accepts any RoleARN unchecked.
    role = first(response, "RoleARN")
    if role is not None:
        checks.append(("iam:PassRole", role))
    return checks


def sns_checks(response, action, region, account):
    # The tagging calls name the topic as ResourceArn; AWS authorizes them against it.
    topic = first(response, "TopicArn") or first(response, "ResourceArn")
    if topic is None and action == "CreateTopic":
        topic = f"arn:aws:sns:{region}:{account}:{first(response, 'Name')}"
    return [(action, topic or "*")]


def lambda_checks(response, action, region, account):
    match = re.search(r"/functions/([^/]+)", response.path)
    if match is None:
        return [(action, "*")]
    name = unquote(match.group(1))
    if not name.startswith("arn:"):
        name = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return [(action, name)]


def logs_checks(response, action, region, account):
    group = response._get_param("logGroupName")
    if group is None:
        return [(action, "*")]
    return [(action, f"arn:aws:logs:{region}:{account}:log-group:{group}")]


# API operations whose IAM action has another name; moto checks the operation's name.
IAM_ACTIONS = {("lambda", "Invoke"): "InvokeFunction"}

CHECKS = {
    "ec2": ec2_checks,
    "cloudformation": cloudformation_checks,
    "sns": sns_checks,
    "lambda": lambda_checks,
    "logs": logs_checks,
    "sts": sts_checks,
    "ebs": ebs_checks,
    "ssm": ssm_checks,
}

def iam_match(pattern, string):
    """IAM's ARN matching: `*` any run of characters, `?` any one, everything else literally."""
    expression = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.match(f"^{expression}$", string, re.DOTALL)


IAMPolicyStatement._match = staticmethod(iam_match)

moto_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action


def authorize(self, iam_request_cls, resource="*"):
    enforcing = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
    public = self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS
    if not enforcing or public or iam_request_cls is not IAMRequest:
        return moto_authorize(self, iam_request_cls, resource)
    raw = self.normalized_request.environ.get(RAW_BODY, self.raw_body)
    scope = self.headers["Authorization"].partition("Credential=")[2].split("/")
    service, region = scope[3], scope[2]
    action = self._get_action()
    action = IAM_ACTIONS.get((service, action), action)
    checks = CHECKS.get(service)
    if checks is None or resource != "*":
        pairs = [(action, resource)]
    else:
        pairs = checks(self, action, region, self.current_account)
    query = urlparse(self.uri).query
    path = self.raw_path + (f"?{query}" if query else "")
    for index, (checked_action, arn) in enumerate(pairs):
        request = IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=path,
            # moto signs an empty body as its parsed parameters (for a bodiless GET, the
            # headers); an empty body is signed as empty.
            data=self.data if raw else {},
            body=raw,
            headers=self.headers,
            action=checked_action,
        )
        if ":" in checked_action:
            # Another service's action (iam:PassRole): moto prefixes the signing service's.
            request._action = checked_action
        if index == 0:
            request.check_signature()
        request.check_action_permitted(arn)


ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize

run_simple = moto.server.run_simple
moto.server.run_simple = lambda host, port, app, **kwargs: run_simple(
    host, port, KeepRawBody(app), **kwargs
)

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
