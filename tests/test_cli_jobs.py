"""``-j/--jobs N|auto``: eval uses every usable core by default; bad values are one-line usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusekit.cli.jobs import Jobs
from fusekit.workers import usable_cores


def test_auto_means_the_usable_cores_and_numbers_pass_through():
    assert Jobs().convert("auto", None, None) == usable_cores()
    assert Jobs().convert("AUTO", None, None) == usable_cores()
    assert Jobs().convert("3", None, None) == 3
    assert Jobs().convert(2, None, None) == 2


@pytest.mark.parametrize("value, why", [("0", "not a positive number"), ("-2", "not a positive number"),
                                        ("two", "neither a whole number nor 'auto'")])
@pytest.mark.parametrize("command", ["eval", "fuse"])
def test_a_bad_jobs_value_is_a_one_line_usage_error(run_cli, tmp_path: Path, command, value, why):
    args = [command, tmp_path, "-j", value] + (["--fused", tmp_path] if command == "eval" else ["-o", tmp_path / "o"])
    result = run_cli(args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and why in lines[0] and "--jobs" in lines[0], result.stderr


def test_eval_defaults_to_one_worker_per_core_and_scores_the_same(run_cli, mif_dataset: Path, tmp_path: Path,
                                                                  monkeypatch):
    from fusekit.evaluation import runner

    seen = []
    real = runner.run_tasks
    monkeypatch.setattr(runner, "run_tasks", lambda tasks, state, jobs, *rest: seen.append(jobs)
                        or real(tasks, state, jobs, *rest))
    base = ["eval", mif_dataset, "-m", "average", "--metrics", "en,ssim", "--cache", tmp_path / "c",
            "--no-progress"]
    default = run_cli([*base, "-o", tmp_path / "auto.csv"])
    serial = run_cli([*base, "-j", "1", "-o", tmp_path / "one.csv"])
    assert default.exit_code == 0 and serial.exit_code == 0, default.output + serial.output
    scenes = len(list((mif_dataset / "mri").iterdir()))
    assert seen == [min(usable_cores(), scenes), 1]
    assert (tmp_path / "auto.csv").read_text() == (tmp_path / "one.csv").read_text()
