"""Shared fixtures: real data paths, demo images, a CLI runner over a given plugin host."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from fusekit import Fuser

REPO = Path(__file__).resolve().parents[1]
#: The large benchmark data (``<task>/<dataset>/<split>/<source>/``): ``$FUSEKIT_DATA``, or beside
#: the repository (``../shared/data``, where CI has it). A fresh clone has none; the core tests run on
#: ``examples/data`` and the tests that need these data skip with :data:`DATA_HINT`.
DATA = Path(os.environ.get("FUSEKIT_DATA") or REPO.parent / "shared" / "data").expanduser()
EXAMPLES = REPO / "examples" / "data"
#: What a skip says: where the data were looked for and how to get them.
DATA_HINT = (f"benchmark data not found at {DATA}; set FUSEKIT_DATA to a copy laid out as "
             "<task>/<dataset>/<split>/<source>/ (e.g. ivif/tno/test/ir/), built from the public "
             "repositories listed in docs/benchmark_data_sources.tsv")


def require_data(*parts: str) -> Path:
    """The benchmark data path ``DATA/parts...``, or skip the test saying how to get the data.

    Parameters
    ----------
    *parts : str
        Path below the data root (``"ivif/tno/test"``); none for the root itself.

    Returns
    -------
    Path
    """
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(DATA_HINT if not DATA.is_dir() else f"{path} not found in the benchmark data ({DATA_HINT})")
    return path


class ScaledFirst(Fuser):
    """Test fuser ``scaled-first``: the first source times a factor read from a file (a stand-in weights file)."""

    name = "scaled-first"

    def __init__(self, *, weights: str = ""):
        super().__init__()
        self.weights = weights

    def fuse(self, sources):
        return np.clip(np.asarray(sources[0], np.float32) * float(Path(self.weights).read_text()), 0, 1)


@functools.lru_cache(maxsize=None)
def load_refusion_benchmark():
    """``benchmarks/refusion.py`` as a module: the plain reference network and seeded weights."""
    spec = importlib.util.spec_from_file_location("refusion_benchmark", REPO / "benchmarks" / "refusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def demo_pair() -> tuple[np.ndarray, np.ndarray]:
    """The README's infrared (grey) and visible (colour) demo images, float32 [0, 1]."""
    from fusekit.io import read_image

    return read_image(EXAMPLES / "ir.png"), read_image(EXAMPLES / "vi.png")


@pytest.fixture
def run_cli():
    """Run the fusekit CLI in-process: ``run_cli(args, host=None) -> click Result``."""
    from click.testing import CliRunner

    from fusekit.cli import make_cli

    def run(args, host=None):
        runner = CliRunner()
        return runner.invoke(make_cli(host), [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors: one torch thread is fastest and does not fight other tests for cores."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["compiled", "numpy"])
def metric_kernels(request, monkeypatch):
    """Run a test with numba's metric kernels (skipped if numba is missing) and with numpy/scipy only."""
    from fusekit.metrics import compiled

    if request.param == "compiled":
        pytest.importorskip("numba")
        monkeypatch.setenv("FUSEKIT_NUMBA", "1")
    else:
        monkeypatch.setenv("FUSEKIT_NUMBA", "0")
    compiled._reset()
    yield request.param
    compiled._reset()


@pytest.fixture()
def mif_dataset(tmp_path: Path) -> Path:
    """Two crops of the real demo CT/MRI pair as scenes 1 and 2 in ct/ and mri/."""
    from fusekit.io import read_image, write_image

    root = tmp_path / "mif"
    for name, (top, left) in (("1", (40, 40)), ("2", (100, 90))):
        for mod in ("ct", "mri"):
            image = read_image(EXAMPLES / "mif" / mod / "11.png")
            write_image(root / mod / f"{name}.png", image[top:top + 64, left:left + 64])
    return root
