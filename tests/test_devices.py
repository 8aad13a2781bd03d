"""The one device resolver, shared by network fusers and the trainer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fusekit.devices import resolve_device  # noqa: E402
from fusekit.errors import ParameterError  # noqa: E402


def test_names_resolve_and_bad_ones_say_what_to_use():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParameterError, match="unknown device 'gpu'; use cpu, cuda, cuda:N or auto"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available here; use --device cpu"):
            resolve_device("cuda:0")


def test_fusers_and_trainer_share_it():
    from fusekit.training import trainer
    from fusekit_refusion.fuser import ReFusion

    assert trainer._resolve_device is resolve_device
    assert ReFusion(device="cpu").torch_device == torch.device("cpu")
