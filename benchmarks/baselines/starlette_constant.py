"""Ceiling 2: a Starlette endpoint that reads the request body and returns a constant.

Run: uvicorn --app-dir benchmarks/baselines starlette_constant:app --loop uvloop --http httptools
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def predict(request: Request) -> Response:
    await request.body()
    return Response(b'{"predictions":[1]}', media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
