"""Runs moto_server with its EC2 tag lookup made constant-time; what moto stores and answers is unchanged.

Test-only. moto 5.2.5 finds one resource's tags by scanning every tag of every EC2 resource with
a regular expression (`describe_tags` filtered by resource id), so describing N snapshots costs
N x (all tags): 1,000 snapshots take ~5 s to describe and 4,000 over a minute, which keeps the
large-fleet benchmark from reading its own inventory. The lookup below reads the resource's own
entry of the same tag store and returns the same list, in the same order, as the scan would.

Usage: python fast_moto.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys

import moto.server
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

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
