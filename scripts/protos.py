"""Regenerate the gRPC Python modules from src/dockyard/server/grpc/inference.proto
(`make protos`; needs grpcio-tools, in the dev extra). The generated files are committed;
tests/unit/test_grpc_protos.py regenerates them with :func:`generate` and fails when the
committed ones no longer match the .proto.

One change to protoc's output: the messages go in a descriptor pool of their own, not the
process-wide default one. tritonclient and kserve each register protobuf package ``inference``
in the default pool too (and cannot be imported together for that reason); with its own pool
Dockyard's server shares a process with either of them.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = "dockyard/server/grpc/inference.proto"
OUTPUTS = ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py")
_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_OWN_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def generate(out: Path) -> dict[str, str]:
    """Run protoc on the .proto into ``out``; return each generated file's text by name."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "src"
        (source / PROTO).parent.mkdir(parents=True)
        shutil.copyfile(ROOT / "src" / PROTO, source / PROTO)
        argv = ["protoc", f"-I{source}", f"--python_out={out}", f"--pyi_out={out}"]
        argv += [f"--grpc_python_out={out}", str(source / PROTO)]
        if protoc.main(argv) != 0:
            raise SystemExit("protoc failed")
    folder = out / Path(PROTO).parent
    texts = {name: (folder / name).read_text() for name in OUTPUTS}
    if _DEFAULT_POOL not in texts["inference_pb2.py"]:
        raise SystemExit("protoc's output changed shape: update scripts/protos.py")
    texts["inference_pb2.py"] = texts["inference_pb2.py"].replace(_DEFAULT_POOL, _OWN_POOL)
    return texts


def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        texts = generate(Path(out))
    target = ROOT / "src" / Path(PROTO).parent
    for name, text in texts.items():
        (target / name).write_text(text)
        print(f"wrote {(target / name).relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
