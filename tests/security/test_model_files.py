"""Model files that reach outside the model: TorchScript operators on files and ONNX external
data. Without trust each is refused before any of its code runs or any outside byte is
read, at registration and again at load; with trust (TorchScript only) it is recorded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from dockyard.errors import InvalidRequestError, ModelLoadError, UntrustedModelError
from dockyard.registry import Registry
from dockyard.registry.types import NewVersion
from dockyard.settings import Settings

SAMPLE = np.random.default_rng(5).normal(size=(20, 4)).astype(np.float32)


@pytest.fixture
def registry(sqlite_settings: Settings) -> Iterator[Registry]:
    with Registry.open(sqlite_settings) as opened:
        yield opened


def _store_unchecked(registry: Registry, name: str, runtime: str, data: bytes) -> str:
    """A version written as the registry of an older Dockyard would have: no screening."""
    digest = registry.artifacts.put(data)
    new = NewVersion(runtime=runtime, digest=digest, size=len(data))
    return registry.store.add_version(name, new, actor="old-dockyard").ref


# --- TorchScript -------------------------------------------------------------------------


class ReadsFile(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stolen = torch.from_file(self.path, shared=False, size=8, dtype=torch.uint8)
        return x.sum(1) + stolen.float().sum()


def _write(path: str) -> torch.Tensor:
    mapped = torch.from_file(path, shared=True, size=8, dtype=torch.uint8)
    mapped.fill_(65)
    return mapped[0].float() * 0


class WritesInForward(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.path, shared=True, size=8, dtype=torch.uint8)
        mapped.fill_(65)
        return x.sum(1) + mapped[0].float() * 0


class WritesInAFunction(WritesInForward):
    """The write sits in a TorchScript function the forward calls (inlined when checked)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1) + _write(self.path)


class WritesInASubmoduleMethod(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.inner = _Writer(path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1) + self.inner.touch()


class _Writer(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def touch(self) -> torch.Tensor:
        mapped = torch.from_file(self.path, shared=True, size=8, dtype=torch.uint8)
        mapped.fill_(65)
        return mapped[0].float() * 0


class WritesInAHook(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.linear.path = path
        self.linear.register_forward_hook(_hook)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(1)


def _hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
    mapped = torch.from_file(module.path, shared=True, size=8, dtype=torch.uint8)
    mapped.fill_(65)
    return output + mapped[0].float() * 0


class WritesWhileLoading(nn.Module):
    """``torch.jit.load`` runs ``__setstate__``: the write happens before any predict."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.seen = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1) + self.seen * 0

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        mapped = torch.from_file(state[0], shared=True, size=8, dtype=torch.uint8)
        mapped.fill_(65)
        self.seen = float(mapped[0])
        self.path = state[0]
        self.training = state[1]


WRITERS: dict[str, Callable[[str], nn.Module]] = {
    "forward": WritesInForward,
    "function": WritesInAFunction,
    "submodule-method": WritesInASubmoduleMethod,
    "hook": WritesInAHook,
    "setstate": WritesWhileLoading,
}


def _scripted_writer(kind: str, target: Path) -> Any:
    return torch.jit.script(WRITERS[kind](str(target)))


def _saved(scripted: Any, folder: Path) -> Path:
    path = folder / "model.pt"
    scripted.save(str(path))
    return path


def test_torchscript_reading_a_file_is_refused_without_trust(
    registry: Registry, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.env"
    secret.write_bytes(b"TOKEN=hunter2-very-secret")
    model = _saved(torch.jit.script(ReadsFile(str(secret))), tmp_path)

    with pytest.raises(UntrustedModelError, match="aten::from_file") as refused:
        registry.register(model, "reader", sample=SAMPLE)

    assert refused.value.details == {"operators": ["aten::from_file"]}
    assert "trusted=True" in str(refused.value)
    assert registry.list_models() == []


@pytest.mark.parametrize("source", ["file", "object"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_torchscript_writing_a_file_is_refused_before_any_of_it_runs(
    registry: Registry, tmp_path: Path, kind: str, source: str
) -> None:
    target = tmp_path / "site-packages" / "evil.pth"
    target.parent.mkdir()
    scripted = _scripted_writer(kind, target)
    model = _saved(scripted, tmp_path) if source == "file" else scripted

    with pytest.raises(UntrustedModelError) as refused:
        registry.register(model, "writer", sample=SAMPLE)

    expected = "__setstate__" if kind == "setstate" else "aten::from_file"
    assert expected in refused.value.details["operators"]
    assert not target.exists()
    assert registry.list_models() == []


@pytest.mark.parametrize("kind", ["forward", "setstate"])
def test_trusted_torchscript_runs_and_the_trust_is_recorded(
    registry: Registry, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "written.bin"
    model = _saved(_scripted_writer(kind, target), tmp_path)

    version = registry.register(model, "writer", sample=SAMPLE, trusted=True)

    assert version.trusted
    expected = "torchscript:__setstate__" if kind == "setstate" else "torchscript:aten::from_file"
    assert expected in version.trusted_types
    event = registry.events(model="writer", action="version.register")[0]
    assert event.details["trusted"] is True
    assert expected in event.details["trusted_types"]
    target.unlink()  # written at registration, with trust; loading again runs it again
    registry.load("writer").predict(SAMPLE)
    assert target.read_bytes() == b"A" * 8


@pytest.mark.parametrize("kind", ["forward", "setstate"])
def test_torchscript_stored_without_trust_is_screened_again_at_load(
    registry: Registry, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "written.bin"
    model = _saved(_scripted_writer(kind, target), tmp_path)
    ref = _store_unchecked(registry, "writer", "torch", model.read_bytes())

    with pytest.raises(UntrustedModelError):
        registry.load(ref)

    assert not target.exists()


class _Convolutional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 3, 2)
        self.norm = nn.BatchNorm1d(3)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.pool(torch.relu(self.norm(self.conv(x.unsqueeze(1))))).flatten(1)
        return torch.softmax(self.head(hidden), dim=1)


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, 3, batch_first=True)
        self.attention = nn.TransformerEncoderLayer(3, 1, 8, batch_first=True)
        self.head = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(x.unsqueeze(-1))
        return self.head(self.attention(hidden)[:, -1]).squeeze(1)


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2), nn.LogSoftmax(dim=1)
    )


BENIGN: dict[str, Callable[[], Any]] = {
    "scripted-mlp": lambda: torch.jit.script(_mlp().eval()),
    "traced-mlp": lambda: torch.jit.trace(_mlp().eval(), torch.zeros(1, 4)),
    "scripted-cnn": lambda: torch.jit.script(_Convolutional().eval()),
    "traced-cnn": lambda: torch.jit.trace(_Convolutional().eval(), torch.zeros(2, 4)),
    "scripted-lstm-transformer": lambda: torch.jit.script(_Recurrent().eval()),
}


@pytest.mark.parametrize("kind", sorted(BENIGN))
def test_torchscript_of_allow_listed_operators_needs_no_trust(
    registry: Registry, tmp_path: Path, kind: str
) -> None:
    torch.manual_seed(0)
    scripted = BENIGN[kind]()
    model = _saved(scripted, tmp_path)

    version = registry.register(model, "net", sample=SAMPLE)

    assert not version.trusted
    assert version.trusted_types == ()
    event = registry.events(model="net", action="version.register")[0]
    assert event.details["trusted"] is False
    with torch.inference_mode():
        expected = scripted(torch.from_numpy(SAMPLE)).numpy()
    np.testing.assert_allclose(registry.load("net").predict(SAMPLE), expected, rtol=1e-6)


# --- ONNX external data --------------------------------------------------------------------


def _external_model(location: str, where: str) -> Any:
    """A model whose output is an 8-byte tensor kept in the external file ``location``."""
    from onnx import TensorProto, helper

    stolen = TensorProto(name="W", data_type=TensorProto.UINT8, dims=[8])
    stolen.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        entry = stolen.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("X", TensorProto.UINT8, [None, 8])
    y = helper.make_tensor_value_info("Y", TensorProto.UINT8, [None, 8])
    initializers = []
    if where == "initializer":
        nodes = [helper.make_node("Add", ["X", "W"], ["Y"])]
        initializers = [stolen]
    elif where == "attribute":
        nodes = [
            helper.make_node("Constant", [], ["W"], value=stolen),
            helper.make_node("Add", ["X", "W"], ["Y"]),
        ]
    else:  # a tensor attribute inside an If branch
        out = helper.make_tensor_value_info("B", TensorProto.UINT8, [8])
        branch = helper.make_graph(
            [helper.make_node("Constant", [], ["B"], value=stolen)], "branch", [], [out]
        )
        condition = helper.make_tensor("C", TensorProto.BOOL, [], [True])
        nodes = [
            helper.make_node("Constant", [], ["cond"], value=condition),
            helper.make_node("If", ["cond"], ["W"], then_branch=branch, else_branch=branch),
            helper.make_node("Add", ["X", "W"], ["Y"]),
        ]
    graph = helper.make_graph(nodes, "exfiltrate", [x], [y], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def server_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a secret, as a server's would."""
    cwd = tmp_path / "server"
    cwd.mkdir()
    (cwd / "server.env").write_bytes(b"SECRET12")
    monkeypatch.chdir(cwd)
    return cwd


LOCATIONS = ["server.env", "weights.bin", "../server/server.env", "/etc/hostname"]


@pytest.mark.parametrize("where", ["initializer", "attribute", "subgraph"])
@pytest.mark.parametrize("location", LOCATIONS)
def test_onnx_external_data_is_refused_at_registration(
    registry: Registry, server_cwd: Path, tmp_path: Path, location: str, where: str
) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"WEIGHTS!")  # beside the model: not stored either
    model = _external_model(location, where)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    sample = np.zeros((3, 8), dtype=np.uint8)

    for source in (path, model):
        with pytest.raises(InvalidRequestError, match="outside the model") as refused:
            registry.register(source, "exfiltrate", sample=sample)
        assert refused.value.details == {"external_data": [location]}

    assert registry.list_models() == []


@pytest.mark.parametrize("where", ["initializer", "attribute", "subgraph"])
def test_onnx_external_data_is_found_without_the_onnx_package_imported(
    tmp_path: Path, where: str
) -> None:
    """A serving process reads models with onnx's generated message classes alone, never
    ``import onnx`` (~12 MiB): the check finds every external tensor there as well."""
    path = tmp_path / "model.onnx"
    path.write_bytes(_external_model("server.env", where).SerializeToString())
    script = (
        "import sys; from pathlib import Path; from dockyard.runtimes.onnx import external_data;"
        f" found = external_data(Path({str(path)!r}).read_bytes());"
        " print(sorted(set(found)), 'onnx' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[('W',", "'server.env')]", "False"]


def test_onnx_external_data_stored_before_is_refused_at_load(
    registry: Registry, server_cwd: Path
) -> None:
    from dockyard.runtimes.onnx import OnnxRuntime

    data = _external_model("server.env", "initializer").SerializeToString()
    ref = _store_unchecked(registry, "exfiltrate", "onnx", data)

    with pytest.raises(ModelLoadError, match=r"server\.env"):
        registry.load(ref)
    with pytest.raises(ModelLoadError, match=r"server\.env"):  # the server's own ONNX path
        OnnxRuntime().load(registry.artifacts.get(registry.get_version(ref).digest), {})
