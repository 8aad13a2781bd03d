"""What a command imports before it reads an image (start-up time: BENCHMARKS.md, metrics-first-run)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from fusekit.plugins import may_advertise

#: Heavy or unrelated modules a start-up must not import.
NOT_AT_START = ("torch", "numba", "scipy.ndimage", "importlib.metadata", "tqdm",
                "fusekit.training.config", "fusekit.metrics.profiles", "fusekit.cli.train")


def _modules_after(argv: list[str], cwd) -> set[str]:
    code = ("import atexit, json, sys\n"
            "seen = set(sys.modules)\n"      # json is imported here, by this probe
            "atexit.register(lambda: print(json.dumps(sorted(set(sys.modules) - seen))))\n"
            "from fusekit.cli import main\n"
            f"main({argv!r})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                         env={"PATH": "/usr/bin:/bin", "FUSEKIT_NUMBA": ""})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_version_imports_no_heavy_module(tmp_path):
    loaded = _modules_after(["--version"], tmp_path)
    assert "fusekit.cli" in loaded
    assert not [m for m in NOT_AT_START if m in loaded]


def test_fuse_imports_no_training_nor_metric_profiles(tmp_path, demo_pair):
    from fusekit.io import write_image

    for name, image in zip(("a", "b"), demo_pair):
        (tmp_path / name).mkdir()
        write_image(tmp_path / name / "x.png", image)
    loaded = _modules_after(["fuse", "-m", "average", str(tmp_path / "a"), str(tmp_path / "b"),
                             "-o", str(tmp_path / "out")], tmp_path)
    assert (tmp_path / "out" / "x.png").exists()
    unwanted = {"torch", "numba", "scipy.ndimage", "fusekit.training.config", "fusekit.metrics.profiles",
                "fusekit.cli.train", "fusekit.cli.eval"}
    assert not unwanted & loaded


def test_eval_of_one_triplet_imports_no_tqdm_numba_or_scipy_ndimage(tmp_path, demo_pair):
    from fusekit.io import write_image

    ir, vi = demo_pair
    for name, image in (("ir", ir), ("vi", vi), ("fused", (ir + vi.mean(axis=2)) / 2)):
        (tmp_path / name).mkdir()
        write_image(tmp_path / name / "x.png", image)
    loaded = _modules_after(["eval", str(tmp_path), "--fused", str(tmp_path / "fused"),
                             "--profile", "cddfuse"], tmp_path)
    assert "fusekit.metrics.structural" in loaded                  # it did score
    assert not {"tqdm", "numba", "scipy.ndimage", "torch", "fusekit.cli.train"} & loaded
    # nor what only --method runs, CSV output and --list-metrics need (hashes: OpenSSL; the
    # profiles' convention tables)
    assert not {"hashlib", "csv", "fusekit.metrics.conventions"} & loaded
    # one job and no bar: the items run in this process without the process-pool machinery
    assert not {"multiprocessing", "fusekit.execution"} & loaded


def test_hidden_progress_bar_needs_no_tqdm():
    from fusekit.evaluation.worker import _progress

    with _progress(False).bar([]) as bar:
        bar.update(2)
        assert not type(bar).__module__.startswith("tqdm")
    with _progress(True).bar([]) as bar:                            # shown: a real tqdm bar
        assert type(bar).__module__.startswith("tqdm")
        bar.update(2)


def test_entry_point_scan_finds_only_real_sections(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "other-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "entry_points.txt").write_text("[console_scripts]\nfusekit-helper = other:main\n")
    monkeypatch.setattr(sys, "path", [str(site)])
    # other tests may have imported the importlib_metadata backport, whose finder lists distributions
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not hasattr(f, "find_distributions")])
    assert may_advertise("fusekit") is False          # mentions fusekit, but not as a group
    (dist / "entry_points.txt").write_text("[console_scripts]\nx = y\n\n [fusekit] \nplug = other.plugin\n")
    assert may_advertise("fusekit") is True
    assert may_advertise("console_scripts") is True


def test_entry_point_scan_leaves_other_distribution_finders_to_importlib(tmp_path, monkeypatch):
    class Finder:
        @staticmethod
        def find_spec(*args):
            return None

        @staticmethod
        def find_distributions(*args, **kwargs):
            return iter(())

    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not hasattr(f, "find_distributions")])
    assert may_advertise("fusekit") is False
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert may_advertise("fusekit") is True


@pytest.mark.parametrize("entry", ["archive.zip", "old.egg"])
def test_entry_point_scan_leaves_archives_and_eggs_to_importlib(tmp_path, monkeypatch, entry):
    path = tmp_path / entry
    if entry.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("mod.py", "")
    else:
        path.mkdir()
    monkeypatch.setattr(sys, "path", [str(path)])
    assert may_advertise("fusekit") is True


def test_freed_memory_is_kept_only_where_malloc_is_glibcs_and_untuned():
    code = ("import os, sys\n"
            "from fusekit.cli.memory import keep_freed_memory\n"
            "print(keep_freed_memory())\n")
    def run(extra):
        env = {"PATH": "/usr/bin:/bin", **extra}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              check=True).stdout.strip()
    assert run({"MALLOC_ARENA_MAX": "2"}) == "False"           # the user tunes malloc: hands off
    assert run({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}) == "False"
    import platform

    expected = "True" if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" else "False"
    assert run({}) == expected


def test_in_process_items_fail_as_execute_fails_them(monkeypatch):
    """One job and no bar runs the items here without fusekit.execution; an item that raises fails
    each of its images with the same message as execute() gives it."""
    import concurrent.futures as cf

    from fusekit.evaluation import worker
    from fusekit.metrics.profiles import get_profile

    def run_task(state, task):
        if task.image == "bad":
            raise RuntimeError("boom\nsecond line")
        return [worker._Outcome(task.image, f.method, {"en": 1.0}, []) for f in task.fused]

    monkeypatch.setattr(worker, "run_task", run_task)
    fused = (worker._Fused("a", "a.png", None), worker._Fused("b", "b.png", None))
    tasks = [worker._Task(name, ("x.png", "y.png"), fused) for name in ("good", "bad", "last")]
    state = worker._State((), get_profile("standard"))
    here = worker.run_tasks(tasks, state, jobs=1, executor=None, progress=False)
    with cf.ThreadPoolExecutor(max_workers=1) as pool:             # through fusekit.execution.execute
        there = worker.run_tasks(tasks, state, jobs=1, executor=pool, progress=False)
    assert here == there
    assert [(o.image, o.method, o.errors) for o in here if o.errors] == [
        ("bad", "a", [(None, "RuntimeError: boom")]), ("bad", "b", [(None, "RuntimeError: boom")])]
