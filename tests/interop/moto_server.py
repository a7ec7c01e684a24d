"""Runs moto's S3 server with one request at a time.

  python moto_server.py HOST PORT

moto checks `If-None-Match: *` and then writes, without a lock: under load,
two racing conditional PUTs of the same key can both succeed, which real S3
never allows. Serializing requests makes the check and the write one step,
so racing-writer tests test Wavelake, not moto.
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


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # moto builds whole bodies, so the response is complete here.
            return list(app(environ, start_response))

    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
