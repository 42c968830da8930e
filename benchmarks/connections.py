"""What the connection guard (``dockyard.server.connections``) adds to the hot path: the median
time of one ``data_received`` carrying a whole one-row predict request, uvicorn's httptools
protocol against ``GuardedProtocol``, in process, interleaved in rounds (the machine's noise
hits both alike). The app answers a constant, so the figure is the protocol's own work.

End to end, compare a served endpoint with and without the guard with ``ab.py`` and two
source trees (``--variant NAME=log-on:PYTHONPATH=/copy/of/src``).

Run:  .venv/bin/python benchmarks/connections.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from dockyard.server.connections import ConnectionLimits, GuardedProtocol, RefusalLog

BODY = b'{"instances": [{"x0": 0.5, "x1": 1.5}]}'
REQUEST = (
    b"POST /v1/endpoints/m/predict HTTP/1.1\r\nHost: bench\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


async def constant(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


class NullTransport(asyncio.Transport):
    """Swallows writes; enough of a socket for the protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 80), "peername": ("127.0.0.1", 9)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def median_us(protocol: Any, requests: int) -> float:
    """Median microseconds of one ``data_received`` of a whole request on a kept-alive
    connection (the app's task runs between reads)."""
    config = Config(constant, log_level="warning", access_log=False)
    config.load()
    connection = protocol(config=config, server_state=ServerState(), app_state={})
    connection.connection_made(NullTransport())
    clock = time.perf_counter_ns
    took = []
    for _ in range(requests):
        start = clock()
        connection.data_received(REQUEST)
        took.append(clock() - start)
        await asyncio.sleep(0)  # the request's task answers
        await asyncio.sleep(0)
    return statistics.median(took) / 1000


async def main(requests: int, rounds: int) -> None:
    guarded = functools.partial(
        GuardedProtocol,
        limits=ConnectionLimits(header_timeout_s=10, body_timeout_s=60, max_connections=2048),
        refusals=RefusalLog(),
    )
    plain_us, guarded_us = [], []
    for i in range(rounds):
        plain_us.append(await median_us(HttpToolsProtocol, requests))
        guarded_us.append(await median_us(guarded, requests))
        print(f"round {i + 1}: httptools {plain_us[-1]:.2f} µs, guarded {guarded_us[-1]:.2f} µs")
    added = [g - p for g, p in zip(guarded_us, plain_us, strict=True)]
    print(
        f"median per request: httptools {statistics.median(plain_us):.2f} µs, guarded "
        f"{statistics.median(guarded_us):.2f} µs, added {statistics.median(added):+.2f} µs"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    uvloop.run(main(args.requests, args.rounds))
