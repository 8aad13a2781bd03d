"""CUDA paths, end to end through the CLI: skipped where no GPU is present.

Run on a GPU machine with ``pytest -m gpu``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from .conftest import EXAMPLES  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_refusion_on_cuda_matches_cpu_with_shipped_weights(run_cli, tmp_path):
    import imageio.v3 as iio

    outputs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.png"
        result = run_cli(["fuse", "-m", "refusion", "--task", "ivif", "--device", device, "--bit-depth", "16",
                          EXAMPLES / "ir.png", EXAMPLES / "vi.png", "-o", out])
        assert result.exit_code == 0, result.output
        outputs[device] = iio.imread(out).astype(np.float64) / 65535.0
    assert np.abs(outputs["cpu"] - outputs["cuda"]).max() < 2e-3  # TF32/cuDNN rounding, 16-bit output


def test_train_a_few_steps_on_cuda(run_cli, tmp_path):
    import shutil

    from fusekit_refusion.fuser import ReFusion

    data = tmp_path / "data"  # the demo PET/MRI pair in the dataset layout
    for modality in ("pet", "mri"):
        (data / modality).mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{modality}.png", data / modality / "11.png")
    out = tmp_path / "w.safetensors"
    result = run_cli(["train", "--task", "mif", data,
                      "--device", "cuda", "--steps", "4", "--batch-size", "2", "--patch-size", "32",
                      "--meta-steps", "1", "--fusion-steps", "1", "--no-progress", "-o", out])
    assert result.exit_code == 0, result.output
    fuser = ReFusion(task="mif", weights=str(out), device="cuda")
    fused = fuser.fuse([np.random.default_rng(0).random((40, 48), dtype=np.float32)] * 2)
    assert fused.shape == (40, 48) and np.isfinite(fused).all()
