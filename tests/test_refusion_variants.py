"""Shipped weights variants (`--weights fixed|learned`), `fusekit info` and `fusekit explain` (issue 21)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fusekit_refusion.weights as shipped  # noqa: E402
from fusekit.errors import WeightsError  # noqa: E402
from fusekit_refusion.fuser import ReFusion  # noqa: E402
from fusekit_refusion.meta_networks import LossProposalNet  # noqa: E402
from fusekit_refusion.network import ReFusionNet  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _save(state, path, **meta):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={k: str(v) for k, v in meta.items()})
    return path


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    """A registry with a fixed and a learned (default, with proposer) MFIF variant of random test networks."""
    torch.manual_seed(0)
    fixed, learned, proposer = ReFusionNet(), ReFusionNet(), LossProposalNet()
    _save(fixed.state_dict(), tmp_path / "mfif_fixed.safetensors", task="mfif")
    _save(learned.state_dict(), tmp_path / "mfif_learned.safetensors", task="mfif")
    _save(proposer.state_dict(), tmp_path / "mfif_learned.proposer.safetensors")
    entries = [
        {"task": "mfif", "variant": "fixed", "file": "mfif_fixed.safetensors",
         "sha256": shipped.sha256_of(tmp_path / "mfif_fixed.safetensors"), "card": {"loss_proposer": "fixed"}},
        {"task": "mfif", "variant": "learned", "default": True, "file": "mfif_learned.safetensors",
         "sha256": shipped.sha256_of(tmp_path / "mfif_learned.safetensors"), "card": {"loss_proposer": "refusion"},
         "proposer": "mfif_learned.proposer.safetensors",
         "proposer_sha256": shipped.sha256_of(tmp_path / "mfif_learned.proposer.safetensors")},
    ]
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"format": 1, "weights": entries}))
    monkeypatch.setattr(shipped, "REGISTRY", path)
    return {"fixed": fixed, "learned": learned, "proposer": proposer, "path": path}


def _loaded(fuser):
    fuser.prepare()
    return fuser.network.FM.temperature1.detach().cpu()


def test_variant_names_pick_their_files_and_the_default_is_used_without_one(registry):
    assert torch.equal(_loaded(ReFusion(task="mfif", weights="fixed")), registry["fixed"].FM.temperature1)
    assert torch.equal(_loaded(ReFusion(task="mfif", weights="learned")), registry["learned"].FM.temperature1)
    assert torch.equal(_loaded(ReFusion(task="mfif")), registry["learned"].FM.temperature1)


def test_unknown_variant_and_weights_of_another_task_are_one_line_errors(registry, tmp_path):
    with pytest.raises(WeightsError, match="no weights variant 'best' for task mfif; shipped variants: "
                                           "learned \\(default\\), fixed"):
        ReFusion(task="mfif", weights="best").prepare()
    with pytest.raises(WeightsError, match="weights are for task 'mfif', not 'ivif'"):
        ReFusion(task="ivif", weights=str(tmp_path / "mfif_fixed.safetensors")).prepare()


def test_registry_refuses_two_defaults_for_a_task(registry):
    data = json.loads(registry["path"].read_text())
    data["weights"][0]["default"] = True
    registry["path"].write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="more than one default"):
        shipped.read_registry()


def test_info_lists_the_variants_with_their_cards(registry, run_cli):
    result = run_cli(["info", "refusion"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if line.startswith("mfif")]
    assert [line[:3] for line in lines] == [["mfif", "learned", "yes"], ["mfif", "fixed", "fixed"]]


def _pair(tmp_path):
    rng = np.random.default_rng(1)
    a = (rng.random((40, 56)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) // 2 + 60, 0, 255).astype(np.uint8)
    iio.imwrite(tmp_path / "near.png", a)
    iio.imwrite(tmp_path / "far.png", b)
    return tmp_path / "near.png", tmp_path / "far.png"


def test_explain_draws_the_learned_proposers_maps(registry, run_cli, tmp_path):
    a, b = _pair(tmp_path)
    out = tmp_path / "maps.png"
    result = run_cli(["explain", "--task", "mfif", a, b, "-o", out, "--height", "64"])
    assert result.exit_code == 0, result.output
    picture = iio.imread(out)
    assert picture.ndim == 3 and picture.shape[0] > 2 * 64
    # the maps are the proposer's: its mean intensity weight of the first source is reported
    x = torch.from_numpy(np.stack([iio.imread(a), iio.imread(b)]).astype(np.float32)[None] / 255)
    with torch.no_grad():
        w_int = registry["proposer"].eval()(x)[0][0, 0]
    assert f"intensity weight of near.png {float(w_int.mean()):.2f}" in result.stderr


def test_explain_without_a_learned_proposer_is_a_clear_error(registry, run_cli, tmp_path):
    from .corpus import one_line_error

    a, b = _pair(tmp_path)
    one_line_error(run_cli(["explain", "--task", "mfif", "--weights", "fixed", a, b, "-o", tmp_path / "m.png"]),
                   "without a learned loss proposer", "--weights learned")
    one_line_error(run_cli(["explain", "-m", "average", "--task", "mfif", a, b, "-o", tmp_path / "m.png"]),
                   "has no learned loss proposer")
    assert not (tmp_path / "m.png").exists()


def test_explain_help_examples_name_shipped_variants_with_a_proposer(run_cli):
    # the help's examples must run as shown with the weights fusekit ships (the registry fixture not used)
    import re

    result = run_cli(["explain", "--help"])
    examples = re.findall(r"fusekit explain (.*)", result.output)
    assert examples
    shipped_proposers = {(e.task, e.variant) for e in shipped.read_registry() if e.proposer is not None}
    defaults = {e.task: e.variant for e in shipped.read_registry() if e.default}
    for example in examples:
        task = re.search(r"--task (\w+)", example).group(1)
        weights = re.search(r"--weights (\S+)", example)
        variant = weights.group(1) if weights else defaults.get(task)
        assert (task, variant) in shipped_proposers, example
