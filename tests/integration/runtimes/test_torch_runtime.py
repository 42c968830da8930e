"""TorchScript on the CPU; plain modules and torch.save pickles are turned away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from dockyard.errors import UnsupportedModelError, UntrustedModelError
from dockyard.runtimes import Runtimes
from dockyard.runtimes.torch import TorchRuntime


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


def _expected(module: nn.Module, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    with torch.inference_mode():
        result: np.ndarray[Any, Any] = module(torch.tensor(x, dtype=torch.float32)).numpy()
    return result


@pytest.mark.parametrize("convert", ["script", "trace"])
def test_torchscript_module_round_trips_exactly(
    runtimes: Runtimes,
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    convert: str,
) -> None:
    x, _ = numbers
    net = TinyNet().eval()
    scripted = (
        torch.jit.script(net) if convert == "script" else torch.jit.trace(net, torch.zeros(1, 4))
    )
    artifact = runtimes.artifact_from_object(scripted)
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)

    assert (artifact.runtime, artifact.suffix) == ("torch", ".pt")
    np.testing.assert_array_equal(model.predict(x), _expected(scripted, x))
    assert model.input_layout == "array"
    assert not model.has_proba
    assert model.metadata() == {"module": "TinyNet", "parameters": 4 * 8 + 8 + 8 + 1}


def test_plain_module_asks_to_be_scripted(runtimes: Runtimes) -> None:
    with pytest.raises(UnsupportedModelError) as refused:
        runtimes.artifact_from_object(TinyNet())
    assert "torch.jit.script" in str(refused.value.hint)


def test_torchscript_file_is_read_and_torch_save_pickle_is_refused(
    runtimes: Runtimes,
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    tmp_path: Path,
) -> None:
    x, _ = numbers
    scripted = torch.jit.script(TinyNet().eval())
    script_file = tmp_path / "net.pt"
    scripted.save(str(script_file))
    artifact = runtimes.artifact_from_path(script_file)
    model = TorchRuntime().load(artifact.data, artifact.options)
    np.testing.assert_array_equal(model.predict(x), _expected(scripted, x))

    pickle_file = tmp_path / "net.pth"
    torch.save(TinyNet(), pickle_file)
    with pytest.raises(UntrustedModelError):
        runtimes.artifact_from_path(pickle_file)
    with pytest.raises(UnsupportedModelError, match="TinyNet"):
        runtimes.artifact_from_path(pickle_file, trusted=True)
