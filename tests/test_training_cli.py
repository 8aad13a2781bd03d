"""``fusekit train`` end to end on tiny crops: outputs, card, log, resume, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit.plugins import BUILTIN_PLUGINS, build_host  # noqa: E402

from .conftest import DATA  # noqa: E402

FAST = ["--steps", "3", "--batch-size", "1", "--patch-size", "16", "--meta-steps", "1", "--fusion-steps", "1",
        "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def host():
    builtins = tuple(dict.fromkeys(BUILTIN_PLUGINS + ("fusekit.training.plugin",)))
    return build_host(builtins=builtins, entry_points=False, strict=True)



pytestmark = pytest.mark.usefixtures("torch_one_thread")

def _write(path: Path, array: np.ndarray) -> None:
    from fusekit.io import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, array)


@pytest.fixture(scope="module")
def ivif_dir(tmp_path_factory) -> Path:
    """Two 48 x 48 IVIF pairs: crops of real MSRS train images (noise if the data are absent)."""
    from fusekit.io import read_image

    root = tmp_path_factory.mktemp("ivif")
    src = DATA / "ivif" / "msrs" / "train"
    names = sorted(p.name for p in (src / "ir").iterdir())[:2] if src.is_dir() else ["a.png", "b.png"]
    rng = np.random.default_rng(0)
    for name in names:
        for mod in ("ir", "vi"):
            img = read_image(src / mod / name)[200:248, 300:348] if src.is_dir() else rng.random((48, 48))
            _write(root / mod / Path(name).with_suffix(".png").name, np.asarray(img, np.float32))
    return root


def test_train_writes_weights_card_and_log(run_cli, host, ivif_dir, tmp_path):
    out = tmp_path / "w.safetensors"
    log = tmp_path / "log.csv"
    result = run_cli(["train", "--task", "ivif", ivif_dir, "-o", out, "--log", log, "--seed", "3", *FAST], host=host)
    assert result.exit_code == 0, result.output
    from safetensors import safe_open

    with safe_open(str(out), "pt") as fh:
        meta = fh.metadata()
        assert len(list(fh.keys())) == 86  # the ReFusion network's tensors
    assert meta["task"] == "ivif" and meta["method"] == "refusion" and meta["steps"] == "3"
    assert meta["seed"] == "3" and meta["loss_proposer"] == "refusion"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 3 and card["data"][0]["pairs"] == 2 and set(card["final_losses"]) >= {"fuse", "rec"}
    rows = list(csv.DictReader(log.open()))
    assert [r["phase"] for r in rows] == ["meta", "fusion", "meta"]
    assert all(float(r["fuse"]) >= 0 for r in rows)
    # the trained weights load into the fuser
    from fusekit_refusion.fuser import ReFusion

    fused = ReFusion(weights=str(out)).fuse([np.full((20, 20), 0.2, np.float32), np.full((20, 20), 0.7, np.float32)])
    assert fused.shape == (20, 20)


def test_fixed_loss_from_a_patch_file_and_resume(run_cli, host, tmp_path):
    patches = tmp_path / "p.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(patches, patches=rng.integers(0, 256, (5, 2, 24, 24), dtype=np.uint8))
    out = tmp_path / "f.safetensors"
    args = ["train", "--task", "meif", "--patches", patches, "-o", out, "--loss-proposer", "fixed", *FAST]
    assert run_cli(args, host=host).exit_code == 0
    ckpt = out.with_suffix(".ckpt")
    assert ckpt.is_file()
    more = [a if a != "3" else "5" for a in args]  # --steps 5, continuing from step 3
    result = run_cli([*more, "--resume", ckpt], host=host)
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and json.loads(out.with_suffix(".json").read_text())["steps"] == 5


def test_time_schedule_without_steps_trains_until_the_budget_is_spent(run_cli, host, ivif_dir, tmp_path):
    """A user who gives a time budget gets the whole budget, not the 1500-step default; --steps still wins."""
    unbounded = [a for a in FAST if a not in ("--steps", "3")]
    budget = ["--loss-proposer", "fixed", "--max-minutes", "0.05", "--time-schedule"]
    out = tmp_path / "t.safetensors"
    result = run_cli(["train", "--task", "ivif", ivif_dir, "-o", out, *budget, *unbounded], host=host)
    assert result.exit_code == 0, result.output
    card = json.loads(out.with_suffix(".json").read_text())
    # how many steps fit in 3 s depends on the machine's load (3 on a busy CI machine): what matters is
    # that the budget, not a step count, ended the run
    assert card["stopped"] == "time" and card["steps"] >= 1
    from fusekit.training.trainer import UNTIL_TIME_UP

    assert card["config"]["steps"] == UNTIL_TIME_UP  # not cut at the 1500-step default
    capped = tmp_path / "c.safetensors"
    assert run_cli(["train", "--task", "ivif", ivif_dir, "-o", capped, *budget, *FAST], host=host).exit_code == 0
    card = json.loads(capped.with_suffix(".json").read_text())
    assert card["stopped"] == "done" and card["steps"] == 3


def test_bad_input_fails_before_training(run_cli, host, ivif_dir, tmp_path):
    out = tmp_path / "w.safetensors"
    empty = tmp_path / "empty"
    (empty / "ir").mkdir(parents=True)
    (empty / "vi").mkdir()
    cases = [
        ([empty], [], "no images"),
        ([ivif_dir], ["--patch-size", "64"], "smaller than the 64-pixel patch size"),
        ([ivif_dir], ["--loss-proposer", "fixd"], "did you mean 'fixed'"),
        ([ivif_dir], ["--task", "mif"], "needs a sub-folder named ct or pet or spect"),
        ([], [], "no training data"),
    ]
    for dirs, extra, message in cases:
        args = ["train", "--task", "ivif", *dirs, "-o", out, *FAST, *extra]
        result = run_cli(args, host=host)
        assert result.exit_code == 1, (extra, result.output)
        assert message in result.output, result.output
    assert not out.exists()


def test_resume_from_another_method_is_rejected(run_cli, host, ivif_dir, tmp_path):
    fixed_out = tmp_path / "fixed.safetensors"
    assert run_cli(["train", "--task", "ivif", ivif_dir, "-o", fixed_out, "--loss-proposer", "fixed",
                    *FAST], host=host).exit_code == 0
    out = tmp_path / "learned.safetensors"
    result = run_cli(["train", "--task", "ivif", ivif_dir, "-o", out, "--resume", fixed_out.with_suffix(".ckpt"),
                      *FAST], host=host)
    assert result.exit_code == 1 and "checkpoint is for loss proposer 'fixed'" in result.output
    assert not out.exists()


def test_proposer_settings_with_the_fixed_loss_warn_once_and_name_the_flags(run_cli, host, ivif_dir, tmp_path):
    plain = run_cli(["train", "--task", "ivif", ivif_dir, "-o", tmp_path / "a.safetensors", "--loss-proposer",
                     "fixed", *FAST], host=host)
    assert plain.exit_code == 0 and "proposer 'fixed' ignores" not in plain.stderr
    result = run_cli(["train", "--task", "ivif", ivif_dir, "-o", tmp_path / "b.safetensors", "--loss-proposer",
                      "fixed", "--meta-detail", "1", "--symmetric-proposer", *FAST], host=host)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "proposer 'fixed' ignores" in line]
    assert len(lines) == 1
    assert "--symmetric-proposer, --meta-detail" in lines[0] and "'fixed'" in lines[0]
    assert "--loss-proposer refusion" in lines[0]
    # a learnable proposer uses them: no warning
    learned = run_cli(["train", "--task", "ivif", ivif_dir, "-o", tmp_path / "c.safetensors", "--meta-detail", "1",
                       *FAST], host=host)
    assert learned.exit_code == 0 and "proposer 'fixed' ignores" not in learned.stderr


def test_fine_tune_with_init_and_proposer_warmup(run_cli, host, ivif_dir, tmp_path):
    base = tmp_path / "base.safetensors"
    assert run_cli(["train", "--task", "ivif", ivif_dir, "-o", base, "--loss-proposer", "fixed", *FAST],
                   host=host).exit_code == 0
    out = tmp_path / "ft.safetensors"
    result = run_cli(["train", "--task", "ivif", ivif_dir, "-o", out, "--init", base.with_suffix(".ckpt"),
                      "--proposer-warmup", "2", *FAST], host=host)
    assert result.exit_code == 0, result.output
    assert "initialised fuser, reconstructor from" in result.output
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 3 and card["init"].endswith("base.ckpt") and card["proposer_warmup_error"] >= 0
    both = run_cli(["train", "--task", "ivif", ivif_dir, "-o", tmp_path / "x.safetensors", "--init", base,
                    "--resume", out.with_suffix(".ckpt"), *FAST], host=host)
    assert both.exit_code == 1 and "pass only one of them" in both.output


def test_torchrun_trains_with_two_processes_and_rank_0_writes(ivif_dir, tmp_path):
    """``torchrun --nproc-per-node 2 -m fusekit train``: one set of outputs, the card counts the processes."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "w.safetensors"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "plugins"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "fusekit", "train", "--task", "ivif", str(ivif_dir), "-o", str(out),
           "--loss-log", str(tmp_path / "log.csv"), *FAST]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("trained 3 steps") == 1            # only rank 0 reports and writes
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["processes"] == 2 and card["steps"] == 3
    assert len(list(csv.DictReader((tmp_path / "log.csv").open()))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "w.ckpt", "w.json", "w.safetensors"]


def test_every_train_config_field_is_an_option_with_its_default_and_help(run_cli, host, tmp_path, monkeypatch):
    """One source of defaults: the options are TrainConfig's fields, their help its docstring."""
    from dataclasses import fields

    from fusekit.training.config import TrainConfig, field_help

    from .test_training_identity import cli_config

    changed = {"lr_min_ratio": 0.5, "warmup_steps": 7, "lambda_grad_start": 0.25, "ramp_fraction": 0.5,
               "augment": False, "min_std": 0.01, "warmup_smoothing": 0.2, "warmup_lr": 2e-3}
    args = [x for k, v in changed.items() for x in ((f"--no-{k}",) if v is False else (f"--{k}", str(v)))]
    got = cli_config(["--task", "ivif", "--patches", "ivif.npz", "-o", "w.safetensors",
                      *[a.replace("_", "-") for a in args]], tmp_path, monkeypatch)
    assert got == {**{f.name: f.default for f in fields(TrainConfig) if f.name != "task"}, "task": "ivif", **changed}
    shown = " ".join(run_cli(["train", "--help"], host=host).output.split())
    for name, (_, text) in field_help().items():
        if name != "task":
            assert "--" + name.replace("_", "-") in shown
            assert text.split()[-1].rstrip(".") in shown  # each help ends as TrainConfig's docstring does
