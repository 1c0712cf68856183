"""Runs moto's server on 127.0.0.1 with DynamoDB (and Streams) requests and S3 conditional
writes serialised.

moto answers requests on threads without isolation, so two concurrent
TransactWriteItems can both pass their conditions and both apply, and two
PutObject calls with If-None-Match: * can both create the same key. Real
DynamoDB and S3 never let that happen, and the ledger's no-fork guarantee and
the S3 change feed's one-writer-per-position rule rely on it. Holding one lock
around those requests restores that behaviour; other S3 requests, KMS and the
rest stay concurrent so benchmarks still see a concurrent server.
"""
import copy
import os
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

_dynamodb = threading.Lock()
_s3_conditional = threading.Lock()


def serialise(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        lock = None
        if target.startswith("DynamoDB"):  # DynamoDB_ and DynamoDBStreams_
            lock = _dynamodb
        elif environ.get("REQUEST_METHOD") == "PUT" and (
            "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
        ):
            lock = _s3_conditional
        if lock is not None:
            with lock:
                # Drain the body inside the lock so the whole request is handled there.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def cheap_transaction_backups():
    """Makes moto's TransactWriteItems back up each table once, without its stream.

    moto deep-copies a table for every item of a transaction (a 98-item transaction
    copies it 98 times), and the copy includes the table's whole stream history, so
    a streamed table got slower with every write until a test crawled. The backup is
    now made once per table and call and shares the stream; when moto restores a
    backup after a cancelled transaction, the stream records the cancelled writes added
    are cut off again, as DynamoDB never shows them.
    """
    from moto.dynamodb import models as ddb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    backups = {}

    class CopyShim:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x, memo=None):
            if not isinstance(x, Table):
                return copy.deepcopy(x, memo)
            if id(x) in backups:
                return backups[id(x)]
            memo = {} if memo is None else memo
            if x.stream_shard is not None:
                memo[id(x.stream_shard)] = x.stream_shard
            backups[id(x)] = copy.deepcopy(x, memo)
            return backups[id(x)]

    ddb_models.copy = CopyShim()
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        shards = {
            name: (t.stream_shard, len(t.stream_shard.items))
            for name, t in self.tables.items()
            if t.stream_shard is not None
        }
        backups.clear()
        try:
            return original(self, transact_items)
        except Exception:
            for name, (shard, length) in shards.items():
                del shard.items[length:]
                if name in self.tables:
                    shard.table = self.tables[name]
            raise
        finally:
            backups.clear()

    DynamoDBBackend.transact_write_items = transact_write_items


def lean_listings():
    """Makes moto's ListObjectVersions and ListObjectsV2 cost about one page, as S3's do.

    moto deep-copies every version of every key of the bucket on each ListObjectVersions
    call (to mark the latest ones), so paging through a bucket of 200,000 objects copied
    200,000 objects per page: hours of work, and garbage that grew the process past 22 GB
    until the kernel killed it; ListObjectsV2 sorts every key object of the bucket per
    page. Both listings now see only the names a page can reach (those under the prefix
    past the marker, one more than a page holds), found by one sort of the names, so their
    results are the same and both cost the same per page. (A version page starts at the
    marker's name, whose listed versions it skips, then needs one name past the page to
    know it is truncated: hence two names more than the page.)
    """
    from moto.s3 import models as s3_models
    from moto.s3.utils import _VersionedKeyStore

    local = threading.local()
    original_list = s3_models.S3Backend.list_object_versions
    original_get = s3_models.S3Backend.get_bucket

    class Window:
        def __init__(self, keys):
            self.keys = keys

    def get_bucket(self, bucket_name):
        window = getattr(local, "window", None)
        if window is not None and window[0] == bucket_name:
            return window[1]
        return original_get(self, bucket_name)

    def list_object_versions(
        self,
        bucket_name,
        delimiter=None,
        key_marker=None,
        max_keys=1000,
        prefix="",
        version_id_marker=None,
    ):
        args = (bucket_name, delimiter, key_marker, max_keys, prefix, version_id_marker)
        prefix = prefix or ""
        # Only what the callers here send is narrowed (a page from the start, or from a
        # marker under the prefix); anything else is moto's own listing.
        if delimiter or max_keys is None or (
            key_marker is not None and not key_marker.startswith(prefix)
        ):
            return original_list(self, *args)
        keys = original_get(self, bucket_name).keys
        # A copy of the names first: other threads write the bucket while this lists.
        names = sorted(
            n
            for n in list(dict.keys(keys))
            if n.startswith(prefix) and (key_marker is None or n >= key_marker)
        )[: max_keys + 2]
        small = _VersionedKeyStore()
        for n in names:
            versions = keys.getlist(n)
            if versions:
                dict.__setitem__(small, n, list(versions))
        local.window = (bucket_name, Window(small))
        try:
            return original_list(self, *args)
        finally:
            local.window = None

    original_v2 = s3_models.S3Backend.list_objects_v2

    def list_objects_v2(
        self, bucket, prefix, delimiter, continuation_token, start_after, max_keys
    ):
        args = (bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        if (
            delimiter
            or max_keys is None
            or max_keys < 1
            or (continuation_token and continuation_token not in self._pagination_tokens)
        ):
            return original_v2(self, *args)
        limit = (
            self._pagination_tokens.get(continuation_token)
            if continuation_token
            else start_after
        )
        found = []
        for n in sorted(
            n
            for n in list(dict.keys(bucket.keys))
            if n.startswith(prefix or "") and (not limit or n > limit)
        ):
            key = bucket.keys.get(n)
            if key is None or isinstance(key, s3_models.FakeDeleteMarker):
                continue
            found.append(key)
            if len(found) > max_keys:
                break
        return self._truncate_result(found, max_keys)

    s3_models.S3Backend.get_bucket = get_bucket
    s3_models.S3Backend.list_object_versions = list_object_versions
    s3_models.S3Backend.list_objects_v2 = list_objects_v2


def seed(spec):
    """Creates a bucket holding `count` one-byte objects `<prefix>doc-<i:07>` inside moto's
    own process before it serves.

    Benchmarks that need hundreds of thousands of objects seed them this way: through the
    API moto takes about 85 PUTs a second, so 200,000 objects cost 40 minutes before the
    measured work starts; here they take seconds, and each is the object a PutObject
    would have made.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    bucket, prefix, count = spec.split(",")
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    for i in range(int(count)):
        backend.put_object(bucket, f"{prefix}doc-{i:07}", b"x")
    print(f"seeded {count} objects under s3://{bucket}/{prefix}", flush=True)


def main():
    cheap_transaction_backups()
    lean_listings()
    port = int(sys.argv[1])
    # --seed BUCKET,PREFIX,COUNT (benchmarks only)
    if len(sys.argv) > 3 and sys.argv[2] == "--seed":
        seed(sys.argv[3])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        "127.0.0.1",
        port,
        serialise(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
