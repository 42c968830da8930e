"""What the prediction lane saves (``dockyard.server.connections.LaneRequest``): the HTTP
handling of a small prediction, through uvicorn's ASGI cycle and through the protocol's lane,
with the same app answering a constant. The model, decoding and the rest of Dockyard are
left out, so the difference is the per-request cost of the two ways alone.

Three servers, each a fresh process of this script pinned to CPU 0 (``taskset``), wrk (one
thread, 16 connections) on CPU 1, every server fed the same one-row v2 JSON body:

* ``uvicorn``: uvicorn's own httptools protocol, the app through ASGI;
* ``asgi``: ``GuardedProtocol`` (what ``dockyard serve`` runs), the app through ASGI (an app
  without a lane: what any other ASGI app gets);
* ``lane``: ``GuardedProtocol`` with an app that has a lane (``route`` and ``predict``, as
  ``DockyardApp``): the prediction answered by the protocol.

Both ways read the whole body and answer the same reply (a JSON constant, its content type
and a request id). Each round runs the three in turn, the order reversed every other round;
a figure is the median of rounds. The microseconds a request are one core's time divided
among the requests it answered (the server is pinned to one core and kept busy).

Run:  .venv/bin/python benchmarks/lane.py [--seconds 5] [--rounds 4]   (needs wrk)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path
from typing import Any

import harness  # servers and wrk (benchmarks/harness.py)

from dockyard.server.http import Reply

BODY = (
    b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", '
    b'"data": [[0.1, 0.2, 0.3, 0.4]]}]}'
)
ANSWER = b'{"model_name": "m", "outputs": [{"name": "predict", "data": [1]}]}'
PATH = "/v2/models/m/infer"
KINDS = ("uvicorn", "asgi", "lane")


class Constant:
    """An ASGI app answering ``ANSWER`` to a request it has read whole."""

    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"0123456789ab")]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        start = {"type": "http.response.start", "status": 200}
        start["headers"] = [*self.headers, (b"content-length", str(len(ANSWER)).encode())]
        await send(start)
        await send({"type": "http.response.body", "body": ANSWER})


class ConstantWithLane(Constant):
    """The same app with a prediction lane: ``PATH`` is its hot path."""

    def route(self, path: str) -> str | None:
        return path if path == PATH else None

    async def predict(self, route: str, method: str, raw_headers: Any, receive: Any) -> Any:
        while (await receive()).get("more_body"):
            pass
        return Reply(200, ANSWER, list(self.headers))


def serve(kind: str, port: int) -> None:
    """Run one server of ``kind`` on ``port`` until killed."""
    import uvicorn

    from dockyard.server.connections import ConnectionLimits, GuardedProtocol, RefusalLog

    app = ConstantWithLane() if kind == "lane" else Constant()
    http: Any = "httptools"
    if kind != "uvicorn":
        limits = ConnectionLimits(header_timeout_s=30, body_timeout_s=30, max_connections=1000)
        http = functools.partial(GuardedProtocol, limits=limits, refusals=RefusalLog())
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=http,
        access_log=False,
        server_header=False,
        log_level="warning",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds a run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work" / "lane")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    harness.require_wrk("lane.py")
    script = harness.wrk_script(args.work, BODY)
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_ in range(args.rounds):
        for kind in KINDS if round_ % 2 == 0 else reversed(KINDS):
            port = harness.free_port()
            command = ["taskset", "-c", "0", sys.executable, __file__, "--serve", kind]
            server = harness.Server(
                [*command, "--port", str(port)],
                env={},
                cwd=harness.HERE,
                log=args.work / "logs" / f"{kind}.log",
            )
            url = f"http://127.0.0.1:{port}{PATH}"
            try:
                server.start(url, BODY, timeout_s=60)
                harness.wrk(url, script, 16, args.warmup, 1, 0, cpus="1")
                run = harness.Run(server=kind, model="-", connections=16)
                harness.parse_wrk(harness.wrk(url, script, 16, args.seconds, 1, 0, "1"), run)
                if run.non_2xx or run.socket_errors:
                    raise SystemExit(f"{kind}: {run.non_2xx} non-2xx, {run.socket_errors} errors")
                rates[kind].append(run.requests_per_s)
            finally:
                server.stop()
    print(f"{harness.describe_machine()}; 16 connections, {args.seconds} s, {args.rounds} rounds")
    print("| way | req/s (median) | by round | µs a request | ÷ uvicorn |")
    print("|---|---|---|---|---|")
    base = statistics.median(rates["uvicorn"])
    for kind in KINDS:
        median = statistics.median(rates[kind])
        rounds = ", ".join(f"{rate:,.0f}" for rate in rates[kind])
        print(f"| {kind} | {median:,.0f} | {rounds} | {1e6 / median:.1f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
