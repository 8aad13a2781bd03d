"""Run bookkeeping: the loss log, the progress bar, stopping on a signal, and what a run returns."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["TrainResult", "TrainingInterrupted", "LOG_COLUMNS", "log_columns", "open_log", "StopRequest",
           "progress_bar"]

LOG_COLUMNS = ("step", "phase", "lr", "lambda_grad", "fuse", "fuse_int", "fuse_grad", "rec", "meta_rec", "meta_detail",
               "meta_gnorm", "direct_gnorm", "elapsed_s")


@dataclass
class TrainResult:
    """What :meth:`Trainer.run` returns.

    Attributes
    ----------
    step : int
        Steps completed (including those of resumed runs).
    elapsed_s : float
        Wall time of all sessions, seconds.
    stopped : str
        ``"done"`` (all steps), ``"time"`` (``max_minutes`` reached).
    losses : dict of str to float
        Mean losses over the last logged steps (``fuse``, ``rec``, ``meta_rec``).
    """

    step: int
    elapsed_s: float
    stopped: str
    losses: dict[str, float] = field(default_factory=dict)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once the checkpoint is saved; ``.checkpoint`` says where."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        self.step = step
        self.checkpoint = checkpoint
        where = f"checkpoint saved to {checkpoint}; continue with --resume {checkpoint}" if checkpoint else \
            "no checkpoint path was set, nothing saved"
        super().__init__(f"interrupted at step {step}; {where}")


def log_columns(terms: Sequence[str] = ()) -> tuple[str, ...]:
    """:data:`LOG_COLUMNS` with the loss terms' columns ``terms`` it lacks, before ``rec``."""
    extra = tuple(t for t in terms if t not in LOG_COLUMNS)
    at = LOG_COLUMNS.index("rec")
    return LOG_COLUMNS[:at] + extra + LOG_COLUMNS[at:]


def open_log(path: Path | None, step: int, columns: Sequence[str] = LOG_COLUMNS) -> tuple[Any, Any]:
    """The CSV loss log at ``path`` opened for writing (file, ``csv.DictWriter``), or ``(None, None)``.

    ``columns`` are its columns (:func:`log_columns`). A run resumed at
    ``step`` keeps the rows up to it and drops later ones.
    """
    if path is None:
        return None, None
    path.parent.mkdir(parents=True, exist_ok=True)
    kept: list[dict[str, str]] = []
    if step > 0 and path.exists():  # resumed: drop rows after the checkpoint
        with open(path, newline="") as fh:
            kept = [row for row in csv.DictReader(fh) if row.get("step", "").isdigit() and int(row["step"]) <= step]
    fh = open(path, "w", newline="")
    writer = csv.DictWriter(fh, fieldnames=list(columns), restval="")
    writer.writeheader()
    writer.writerows(kept)
    return fh, writer


class StopRequest:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request to stop at the next step boundary.

    The training loop checks :attr:`requested` between steps, so the
    checkpoint it then saves is exact and a resumed run continues as if it
    had never stopped. A second signal interrupts at once (the loop then
    restores its samplers to the start of the cut step). Outside the main
    thread signals cannot be caught, and Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # pragma: no cover - platforms without the signal
                pass

    def uninstall(self) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, initial: int, show: bool | None, desc: str) -> Any:
    """A tqdm bar (``show=None``: only on a terminal), or a silent stand-in."""
    if show is False:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; keep training without it
        return _NoBar()
    return tqdm(total=total, initial=initial, disable=None if show is None else False, desc=desc,
                unit="step", dynamic_ncols=True)
