"""The committed gRPC modules are what ``make protos`` makes of the committed .proto."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "src" / "dockyard" / "server" / "grpc"


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    generate = runpy.run_path(str(ROOT / "scripts" / "protos.py"))["generate"]
    fresh = generate(tmp_path)
    for name, text in fresh.items():
        committed = (GENERATED / name).read_text()
        assert committed == text, f"{name} is stale: run `make protos` and commit the result"


def test_stubs_use_their_own_descriptor_pool() -> None:
    """tritonclient and kserve register package ``inference`` in the default pool; ours must
    not collide with them (both clients are imported in this test process)."""
    text = (GENERATED / "inference_pb2.py").read_text()
    assert "_descriptor_pool.DescriptorPool().AddSerializedFile(" in text
    assert "_descriptor_pool.Default()" not in text


@pytest.mark.parametrize("client", ["tritonclient.grpc", "kserve"])
def test_stubs_import_beside_a_client_that_defines_package_inference(client: str) -> None:
    import subprocess

    code = (
        f"import {client}\n"
        "from dockyard.server.grpc import inference_pb2 as pb, inference_pb2_grpc\n"
        "request = pb.ModelInferRequest(model_name='m', raw_input_contents=[b'x'])\n"
        "assert pb.ModelInferRequest.FromString(request.SerializeToString()) == request\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
