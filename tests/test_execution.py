"""fusekit.execution: every backend gives the same results, keeps failures per item, stops cleanly."""

from __future__ import annotations

import concurrent.futures as cf
import time

import numpy as np
import pytest

from fusekit.execution import Progress, execute
from fusekit.io import read_image, write_image

from .corpus import hidden_files


def _scaled_inverse(scale, x):
    if x == 3:
        raise ValueError("three is bad")
    return scale / x


def _slow_write(folder, name):
    time.sleep(0.1)
    write_image(folder / f"{name:02d}.png", np.full((16, 16), 0.5, np.float32))
    return name


BACKENDS = {"serial": {}, "processes": {"jobs": 2}}


@pytest.mark.parametrize("backend", [*BACKENDS, "executor"])
def test_every_backend_gives_the_same_results_in_order_and_keeps_failures_per_item(backend):
    items = [1, 2, 3, 4, 5]
    with cf.ThreadPoolExecutor(2) as pool:
        kwargs = {"executor": pool} if backend == "executor" else BACKENDS[backend]
        done = list(execute(_scaled_inverse, items, shared=12, ordered=True, **kwargs))
    assert [d.index for d in done] == [0, 1, 2, 3, 4] and [d.item for d in done] == items
    assert [d.value for d in done] == [12, 6, None, 3, 2.4]
    assert [d.error for d in done] == [None, None, "ValueError: three is bad", None, None]


def test_completion_order_yields_every_item_once():
    done = list(execute(_scaled_inverse, range(1, 9), shared=1.0, jobs=2,
                        progress=Progress("test", show=False, weight=lambda x: x)))
    assert sorted(d.index for d in done) == list(range(8))
    assert sum(d.error is not None for d in done) == 1


def test_jobs_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        next(execute(_scaled_inverse, [1], jobs=0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_interrupt_stops_the_workers_and_leaves_only_complete_files(tmp_path, backend):
    with pytest.raises(KeyboardInterrupt):
        for _ in execute(_slow_write, range(30), shared=tmp_path, **BACKENDS[backend]):
            raise KeyboardInterrupt  # Ctrl-C while the first result is handled
    written = sorted(tmp_path.iterdir())
    time.sleep(0.3)
    assert sorted(tmp_path.iterdir()) == written, "workers went on after the interrupt"
    assert not hidden_files(tmp_path)
    assert 1 <= len(written) < 30
    for path in written:
        assert read_image(path).shape == (16, 16)


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        if self.tty is None:
            raise ValueError("I/O operation on closed file")
        return self.tty


@pytest.mark.parametrize("tty", [True, False, None])
@pytest.mark.parametrize("show", [True, False, None])
def test_one_progress_rule_for_execute_and_evals_in_process_path(monkeypatch, tty, show):
    import sys

    from fusekit import execution, progress
    from fusekit.evaluation import worker

    assert execution.Progress is progress.Progress                 # one class, re-exported
    assert not hasattr(execution, "_is_terminal") and not hasattr(worker, "_is_terminal")
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    bar = worker._progress(show)
    shown = show is True or (show is None and tty is True)          # tqdm's rule for disable=None
    assert bar.shown() == shown
    if not shown:
        with bar.bar([]) as hidden:
            assert not type(hidden).__module__.startswith("tqdm")


def _warn_on_even(_, x):
    import warnings

    from fusekit.io import FusekitWarning

    if x % 2 == 0:
        warnings.warn(f"item {x} is even", FusekitWarning)
    return x


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_workers_warnings_reach_the_caller_as_in_a_serial_run(backend):
    from fusekit.io import FusekitWarning

    with pytest.warns(FusekitWarning) as caught:
        done = list(execute(_warn_on_even, [1, 2, 3, 4], **BACKENDS[backend]))
    assert sorted(d.value for d in done) == [1, 2, 3, 4]
    assert sorted(str(w.message) for w in caught) == ["item 2 is even", "item 4 is even"]
