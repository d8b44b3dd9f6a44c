"""Outgoing flood control: token buckets, the limiter every front-end's calls go through,
buckets shared by processes and machines, and persistent broadcasts."""

from tgrunner.flood.buckets import Bucket, BucketTable, Rate
from tgrunner.flood.shared import SharedBuckets, open_shared

__all__ = ["Bucket", "BucketTable", "Rate", "SharedBuckets", "open_shared"]
