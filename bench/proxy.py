"""A round-robin TCP proxy for the benchmarks: each new connection goes to the next upstream.

    python -m bench.proxy LISTEN_PORT UPSTREAM_PORT[,UPSTREAM_PORT...]

127.0.0.1 only, on both sides; gevent, patched before anything else is imported. A stand-in
for a PaaS router in front of several instances (bench/scale.py starts and stops it).
"""

from gevent import monkey

monkey.patch_all()

import itertools  # noqa: E402 - after the patch, on purpose
import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listen: int, upstreams: list[int]) -> None:
    order = itertools.cycle(upstreams)

    def handle(client: socket.socket, _address) -> None:
        upstream = socket.create_connection(("127.0.0.1", next(order)))
        gevent.joinall([gevent.spawn(pipe, client, upstream), gevent.spawn(pipe, upstream, client)])
        client.close()
        upstream.close()

    StreamServer(("127.0.0.1", listen), handle).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), [int(port) for port in sys.argv[2].split(",")])
