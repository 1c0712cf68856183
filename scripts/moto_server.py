"""Runs moto's server on 127.0.0.1 with DynamoDB requests and S3 conditional
writes serialised.

moto answers requests on threads without isolation, so two concurrent
TransactWriteItems can both pass their conditions and both apply, and two
PutObject calls with If-None-Match: * can both create the same key. Real
DynamoDB and S3 never let that happen, and the ledger's no-fork guarantee and
the S3 change feed's one-writer-per-position rule rely on it. Holding one lock
around those requests restores that behaviour; other S3 requests, KMS and the
rest stay concurrent so benchmarks still see a concurrent server.
"""
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
        if target.startswith("DynamoDB_"):
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


def main():
    port = int(sys.argv[1])
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
