"""Runs moto's server on 127.0.0.1 with DynamoDB requests serialised.

moto answers requests on threads without isolation, so two concurrent
TransactWriteItems can both pass their conditions and both apply. Real DynamoDB
never lets that happen, and the ledger's no-fork guarantee relies on it. Holding
one lock around DynamoDB requests restores that behaviour; S3, KMS and the rest
stay concurrent so benchmarks still see a concurrent server.
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


def serialise_dynamodb(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with _dynamodb:
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
        serialise_dynamodb(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
