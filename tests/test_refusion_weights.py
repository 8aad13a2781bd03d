"""ReFusion weights: the authors' .pth layout, safetensors, the shipped registry, clear errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit.errors import ParameterError, WeightsError  # noqa: E402
from fusekit_refusion import weights as shipped  # noqa: E402
from fusekit_refusion.checkpoint import (canonical_state_dict, load_weights_file,  # noqa: E402
                                         to_authors_state_dict)
from fusekit_refusion.fuser import ReFusion  # noqa: E402
from fusekit_refusion.network import ReFusionNet  # noqa: E402

from .conftest import load_refusion_benchmark  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def seeded_net(seed=0) -> ReFusionNet:
    """Deterministic non-trivial weights, for testing loading only (never shipped)."""
    return load_refusion_benchmark().seed_weights(ReFusionNet(), seed)


@pytest.fixture(scope="module")
def net():
    return seeded_net()


@pytest.fixture(scope="module")
def authors_pth(net, tmp_path_factory) -> Path:
    """A .pth in the authors' layout: every conv under NAME.weight and NAME.conv.weight."""
    path = tmp_path_factory.mktemp("w") / "ReFusion_IVIF.pth"
    torch.save(to_authors_state_dict(net), path)
    return path


def test_authors_layout_has_140_entries_for_86_tensors(net):
    theirs = to_authors_state_dict(net)
    assert len(theirs) == 140
    distinct = {k.replace(".conv.weight", ".weight") for k in theirs}
    assert len(distinct) == 86
    for key in ("project_in_1.weight", "project_in_1.conv.weight", "encoder1.0.norm1.body.weight",
                "encoder2.1.norm2.body.bias", "encoder1.0.attn.temperature", "encoder1.0.attn.qkv_dwconv.conv.weight",
                "encoder1.0.ffn.project_in.conv.weight", "FM.temperature1", "FM.project_E1_d.conv.weight",
                "FM.project_out2.weight", "decoder.1.attn.project_out.conv.weight", "project_out_1.conv.weight"):
        assert key in theirs, key
    assert theirs["FM.project_E.weight"].shape == (128, 32, 1, 1)


def test_plain_reference_state_dict_is_the_authors_layout(net):
    """The benchmark's authors-style module produces exactly the keys we export."""
    bench = load_refusion_benchmark()
    assert sorted(bench.PlainReFusion().state_dict()) == sorted(to_authors_state_dict(net))


def test_pth_in_authors_layout_loads_and_matches(net, authors_pth):
    loaded = ReFusionNet()
    load_weights_file(loaded, authors_pth)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(1, 2, 16, 24)
    fuser = ReFusion(weights=str(authors_pth), stretch=False)
    fused = fuser.fuse([x[0, 0].numpy(), x[0, 1].numpy()])
    with torch.no_grad():  # the authors' checkpoint runs as published: plain forward, zero padding
        ref = net(x)[0, 0].numpy()
    assert np.abs(fused - ref).max() <= 1e-5


def test_safetensors_in_our_layout_loads(net, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "ours.safetensors"
    save_file(net.state_dict(), str(path))
    loaded = ReFusionNet()
    load_weights_file(loaded, path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())


def one_line_error(fuser_or_path, *, match: str) -> str:
    with pytest.raises(WeightsError) as info:
        if isinstance(fuser_or_path, ReFusion):
            fuser_or_path.prepare()
        else:
            load_weights_file(ReFusionNet(), fuser_or_path)
    message = str(info.value)
    assert "\n" not in message
    assert match in message, message
    return message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    msg = one_line_error(ReFusion(weights=str(path)), match="not found")
    assert str(path) in msg and "--weights" in msg


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 50, b"just some text\n"],
                         ids=["empty", "binary-garbage", "text"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    msg = one_line_error(path, match="not a weights file")
    assert str(path) in msg


def test_truncated_checkpoint(authors_pth, tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(authors_pth.read_bytes()[:5000])
    one_line_error(path, match="not a readable PyTorch checkpoint")


def test_corrupt_safetensors(net, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file(net.state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:3000])
    one_line_error(path, match="not a readable safetensors")


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"a": Path("/etc")}, fh, protocol=2)  # a non-tensor object: weights_only must refuse it
    one_line_error(path, match="not a readable")


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    one_line_error(path, match="not a state dict")


def test_wrong_keys_are_listed(net, tmp_path):
    state = to_authors_state_dict(net)
    del state["FM.temperature1"]
    state["extra.layer.weight"] = torch.zeros(2)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    msg = one_line_error(path, match="missing keys: FM.temperature1")
    assert "unexpected keys: extra.layer.weight" in msg


def test_another_network_is_rejected(tmp_path):
    path = tmp_path / "resnet_like.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).state_dict(), path)
    msg = one_line_error(path, match="not a ReFusion fusion-network checkpoint")
    assert "86 missing keys" in msg


def test_wrong_shapes_are_listed(net, tmp_path):
    state = to_authors_state_dict(net)
    state["project_in_1.weight"] = state["project_in_1.conv.weight"] = torch.zeros(8, 1, 3, 3)
    path = tmp_path / "narrow.pth"
    torch.save(state, path)
    one_line_error(path, match="project_in_1.weight (8, 1, 3, 3) (expected (16, 1, 3, 3))")


def test_inconsistent_duplicates(net, tmp_path):
    state = to_authors_state_dict(net)
    state["FM.qkv1.conv.weight"] = state["FM.qkv1.conv.weight"] + 1
    with pytest.raises(WeightsError, match="FM.qkv1.weight and its copy"):
        canonical_state_dict(state)


def test_no_shipped_weights_means_a_clear_error_not_random_weights(monkeypatch, tmp_path):
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format": 1, "weights": []}))
    monkeypatch.setattr(shipped, "REGISTRY", registry)
    monkeypatch.setattr(shipped.entry_for, "__defaults__", (registry,))
    fuser = ReFusion(task="mfif")
    msg = one_line_error(fuser, match="no trained weights installed for task mfif")
    assert "--weights FILE" in msg and ".pth" in msg and ".safetensors" in msg


def test_registry_entries_are_checked_by_sha256(net, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    save_file(net.state_dict(), str(tmp_path / "refusion_mif.safetensors"))
    entry = {"task": "mif", "file": "refusion_mif.safetensors",
             "sha256": shipped.sha256_of(tmp_path / "refusion_mif.safetensors"),
             "card": {"trained_with": "test fixture"}}
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format": 1, "weights": [entry]}))
    monkeypatch.setattr(shipped.entry_for, "__defaults__", (registry,))
    assert shipped.installed_tasks(registry) == ["mif"]
    fuser = ReFusion(task="mif", stretch=False)
    fuser.prepare()
    assert torch.equal(fuser.network.FM.temperature2.cpu(), net.FM.temperature2)
    one_line_error(ReFusion(task="ivif"), match="no trained weights installed for task ivif")
    entry["sha256"] = "0" * 64
    registry.write_text(json.dumps({"format": 1, "weights": [entry]}))
    one_line_error(ReFusion(task="mif"), match="does not match the registry")


def test_shipped_registry_is_valid():
    for entry in shipped.read_registry():
        assert entry.path.is_file() and shipped.sha256_of(entry.path) == entry.sha256
        assert entry.card


@pytest.mark.parametrize("options, match", [
    ({"task": "vis"}, "task must be one of"),
    ({"chunk_pixels": 0}, "chunk_pixels"),
    ({"stretch": "yes"}, "stretch"),
    ({"weights": 3}, "option weights takes a path value, got 3"),
])
def test_bad_options(options, match):
    with pytest.raises(ParameterError, match=match):
        ReFusion.create(**options)
