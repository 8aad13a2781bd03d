"""`fusekit fuse` end to end: single sets, folders, and every bad input."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import click
import imageio.v3 as iio
import numpy as np
import pytest

from fusekit import TASKS, Fuser, hookimpl
from fusekit.errors import ParameterError, PluginError
from fusekit.interfaces import Option
from fusekit.plugins import build_host

from .conftest import EXAMPLES


class FirstOfTwo(Fuser):
    """A strictly two-input test method."""

    name = "first-of-two"
    tasks = ("ivif",)
    max_sources = 2

    def fuse(self, sources):
        return sources[0].copy()


class ByTask(Fuser):
    """A test method with a task option: fills the image with the task's index / 10."""

    name = "by-task"

    def __init__(self, *, task: str = "ivif") -> None:
        super().__init__()
        self.task = task

    def fuse(self, sources):
        return np.full_like(sources[0], TASKS.index(self.task) / 10)


class Gain(Fuser):
    """A third-party-style method that declares its options as data, one of them as a flag."""

    name = "gain"
    options = (Option("gain", float, 1.0, "Multiplies the mean", flag=True),
               Option("mode", str, "mean", "How sources combine", choices=("mean", "max")))

    def __init__(self, *, gain: float = 1.0, mode: str = "mean") -> None:
        super().__init__()
        self.gain, self.mode = gain, mode

    def fuse(self, sources):
        combined = np.mean(sources, axis=0) if self.mode == "mean" else np.max(sources, axis=0)
        return np.clip(combined * self.gain, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def host():
    @hookimpl
    def register_fusers(register):
        register(FirstOfTwo)
        register(ByTask)
        register(Gain)

    return build_host(entry_points=False,
                      extra=[(types.SimpleNamespace(register_fusers=register_fusers), "test")])


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array)
    return path


def test_fuse_demo_pair(run_cli, host, tmp_path):
    out = tmp_path / "fused.png"
    result = run_cli(["fuse", "--method", "average", EXAMPLES / "ir.png", EXAMPLES / "vi.png", "-o", out],
                     host=host)
    assert result.exit_code == 0, result.output
    fused = iio.imread(out)
    assert fused.shape == (480, 640, 3) and fused.dtype == np.uint8


def test_three_sources_and_16bit_output(run_cli, host, tmp_path):
    rng = np.random.default_rng(0)
    paths = [write(tmp_path / f"s{i}.png", rng.integers(0, 65536, (32, 40), dtype=np.uint16))
             for i in range(3)]
    out = tmp_path / "f.png"
    result = run_cli(["fuse", "-m", "average", *paths, "-o", out], host=host)
    assert result.exit_code == 0, result.output
    fused = iio.imread(out)
    assert fused.dtype == np.uint16
    expected = np.mean([iio.imread(p) / 65535.0 for p in paths], axis=0)
    np.testing.assert_allclose(fused / 65535.0, expected, atol=2e-5)
    result = run_cli(["fuse", "-m", "average", *paths, "-o", tmp_path / "g.png", "--bit-depth", "8"], host=host)
    assert iio.imread(tmp_path / "g.png").dtype == np.uint8


def test_rgba_source_warns_and_fuses(run_cli, host, tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1] = 120
    rgba[..., 3] = 255
    a = write(tmp_path / "a.png", rgba)
    b = write(tmp_path / "b.png", np.full((16, 16), 50, np.uint8))
    result = run_cli(["fuse", "-m", "average", a, b, "-o", tmp_path / "f.png"], host=host)
    assert result.exit_code == 0
    assert "alpha channel dropped" in result.stderr
    assert iio.imread(tmp_path / "f.png").shape == (16, 16, 3)


def one_line_error(result, *needles):
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_bad_inputs_give_one_line_errors_and_no_output(run_cli, host, tmp_path):
    a = write(tmp_path / "a.png", np.zeros((20, 20), np.uint8))
    b = write(tmp_path / "b.png", np.zeros((20, 20), np.uint8))
    small = write(tmp_path / "small.png", np.zeros((10, 20), np.uint8))
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(a.read_bytes()[:40])
    out = tmp_path / "out.png"
    cases = [
        (["-m", "average", a, tmp_path / "missing.png"], ["missing.png", "not found"]),
        (["-m", "average", a, truncated], ["trunc.png", "cannot read"]),
        (["-m", "average", a, small], ["small.png", "differs"]),
        (["-m", "first-of-two", a, b, a], ["takes 2 sources, got 3"]),
        (["-m", "first-of-two", a], ["takes 2 sources, got 1"]),
        (["-m", "averag", a, b], ["unknown method 'averag'", "did you mean 'average'"]),
        (["-m", "average", "-p", "nonsense=1", a, b], ["no option nonsense"]),
    ]
    for args, needles in cases:
        result = run_cli(["fuse", *args, "-o", out], host=host)
        one_line_error(result, *needles)
        assert not out.exists()
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", blocker / "out.png"], host=host),
                   "cannot write to folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "blocker", "small.png", "trunc.png"]


def test_traceback_flag_shows_the_trace(run_cli, host, tmp_path):
    from fusekit.errors import InputError

    with pytest.raises(InputError):
        run_cli(["--traceback", "fuse", "-m", "average", tmp_path / "x.png", tmp_path / "y.png",
                 "-o", tmp_path / "o.png"], host=host)


@pytest.mark.parametrize("jobs", ["1", "2", "dask"])
def test_folder_mode_fuses_matching_names_and_reports_failures(run_cli, host, tmp_path, jobs):
    if jobs == "dask":
        pytest.importorskip("dask.distributed")
    rng = np.random.default_rng(2)
    for name in ("one", "two", "three"):
        write(tmp_path / "ir" / f"{name}.png", rng.integers(0, 256, (12, 12), dtype=np.uint8))
    write(tmp_path / "vi" / "one.jpg", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))  # any extension
    write(tmp_path / "vi" / "two.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))      # wrong size
    write(tmp_path / "vi" / "four.png", rng.integers(0, 256, (12, 12), dtype=np.uint8))   # no partner
    out = tmp_path / "fused"
    parallel = ["--dask", "local", "-j", "2"] if jobs == "dask" else ["-j", jobs]
    result = run_cli(["fuse", "-m", "average", tmp_path / "ir", tmp_path / "vi", "-o", out, *parallel],
                     host=host)
    assert result.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["one.png"]
    assert "fused 1 of 4 sets" in result.stderr
    for name in ("two", "three", "four"):
        assert f"error: {name}:" in result.stderr


def test_methods_table_lists_tasks_inputs_and_plugin(run_cli, host):
    result = run_cli(["methods"], host=host)
    row = next(line for line in result.stdout.splitlines() if line.startswith("first-of-two"))
    assert "ivif" in row and " 2 " in row and "test" in row


def test_parallel_folder_mode_writes_the_same_images(run_cli, host, tmp_path):
    rng = np.random.default_rng(3)
    for name in ("a", "b", "c", "d"):
        write(tmp_path / "x" / f"{name}.png", rng.integers(0, 256, (24, 20), dtype=np.uint8))
        write(tmp_path / "y" / f"{name}.png", rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    runs = {"1": ["-j", "1"], "3": ["-j", "3"]}
    if importlib.util.find_spec("distributed") is not None:  # dask is in the dev extra
        runs["dask"] = ["--dask", "local", "-j", "2"]
    for label, parallel in runs.items():
        args = ["fuse", "-m", "laplacian-pyramid", tmp_path / "x", tmp_path / "y", "-o", tmp_path / label, *parallel]
        result = run_cli(args, host=host)
        assert result.exit_code == 0, result.output
        assert "fused 4 of 4 sets" in result.stderr
    for label in runs:
        for name in ("a", "b", "c", "d"):
            assert np.array_equal(iio.imread(tmp_path / "1" / f"{name}.png"),
                                  iio.imread(tmp_path / label / f"{name}.png"))
    assert run_cli(["fuse", "-m", "average", tmp_path / "x", tmp_path / "y", "-o", tmp_path / "z", "-j", "0"],
                   host=host).exit_code == 2  # click's usage error: jobs must be >= 1


def test_task_is_ignored_with_a_note_by_methods_without_it(run_cli, host, tmp_path):
    out = tmp_path / "f.png"
    result = run_cli(["fuse", "-m", "average", "--task", "mfif", EXAMPLES / "ir.png", EXAMPLES / "vi.png",
                      "-o", out], host=host)
    assert result.exit_code == 0, result.output
    assert "note: average does not use --task; --task mfif ignored" in result.output and out.exists()
    result = run_cli(["fuse", "-m", "first-of-two", "--task", "mfif", EXAMPLES / "ir.png",
                      EXAMPLES / "vi.png", "-o", out], host=host)
    assert "ignored (it is meant for ivif)" in result.output


@pytest.mark.parametrize("flag", [["--weights", "w.pth"], ["--device", "cuda"], ["--no-stretch"],
                                  ["-p", "levels=3"]])
def test_method_options_a_method_lacks_are_refused(run_cli, host, tmp_path, flag):
    out = tmp_path / "f.png"
    result = run_cli(["fuse", "-m", "average", *flag, EXAMPLES / "ir.png", EXAMPLES / "vi.png", "-o", out],
                     host=host)
    assert result.exit_code != 0 and not out.exists()
    assert "method 'average' has no option" in result.output and "its options are" in result.output


def _task_of(path):
    return TASKS[round(iio.imread(path).max() / 255 * 10)]


@pytest.mark.parametrize("folders, task, note", [
    (("under", "over"), "meif", "by-task: task meif from the source folders (under/, over/)"),
    (("over", "under"), "meif", "but meif expects under-exposed then over-exposed"),
    (("Infrared", "visible"), "ivif", "task ivif from the source folders"),
    (("left", "right"), "ivif", "name no task; using its default task 'ivif'"),
])
def test_task_is_inferred_from_the_source_folders(run_cli, host, tmp_path, folders, task, note):
    rng = np.random.default_rng(0)
    files = [write(tmp_path / f / "x.png", rng.integers(0, 256, (8, 8), dtype=np.uint8)) for f in folders]
    out = tmp_path / "f.png"
    result = run_cli(["fuse", "-m", "by-task", *files, "-o", out], host=host)
    assert result.exit_code == 0, result.output
    assert note in result.output and _task_of(out) == task
    result = run_cli(["fuse", "-m", "by-task", *(tmp_path / f for f in folders), "-o", tmp_path / "o"],
                     host=host)  # folder mode: the folders themselves
    assert result.exit_code == 0 and note in result.output and _task_of(tmp_path / "o" / "x.png") == task


def test_an_explicit_task_wins_without_a_note(run_cli, host, tmp_path):
    files = [write(tmp_path / f / "x.png", np.zeros((8, 8), np.uint8)) for f in ("under", "over")]
    for args in (["--task", "mif"], ["-p", "task=mif"]):
        out = tmp_path / "f.png"
        result = run_cli(["fuse", "-m", "by-task", *args, *files, "-o", out], host=host)
        assert result.exit_code == 0 and "note:" not in result.output and _task_of(out) == "mif"


def test_fuse_help_states_every_default(host):
    """Every option of ``fusekit fuse`` says its default in --help (required ones say required)."""
    from fusekit.cli.fuse import make_fuse_command

    for param in make_fuse_command(host).params:
        if not isinstance(param, click.Option) or param.name == "help" or param.required:
            continue
        text = (param.help or "").lower()
        assert "default" in text or param.show_default, f"{param.opts}: help states no default"


def test_declared_options_build_flags_parsing_and_info(run_cli, host, tmp_path):
    a = write(tmp_path / "a.png", np.full((8, 8), 100, np.uint8))
    b = write(tmp_path / "b.png", np.full((8, 8), 60, np.uint8))
    out = tmp_path / "f.png"
    for args, value in ((["--gain", "2"], 160), (["-p", "gain=0.5", "-p", "mode=max"], 50),
                        (["-p", "gain=1.5", "--gain", "1.5"], 120)):  # a flag and -p may agree
        result = run_cli(["fuse", "-m", "gain", *args, a, b, "-o", out], host=host)
        assert result.exit_code == 0, result.output
        assert iio.imread(out)[0, 0] == value, args
    for args, needle in ((["-p", "gain=much"], "option gain takes a number (float), got 'much'"),
                         (["-p", "mode=min"], "option mode must be one of mean, max, got 'min'"),
                         (["-p", "gian=2"], "has no option gian; its options are: gain=1.0, mode='mean'"),
                         (["--weights", "w.pth"], "has no option weights (--weights)"),
                         (["-p", "gain=0.5", "--gain", "1.5"], "-p gain=0.5 and --gain 1.5 disagree")):
        one_line_error(run_cli(["fuse", "-m", "gain", *args, a, b, "-o", tmp_path / "g.png"], host=host), needle)
    help_text = " ".join(run_cli(["fuse", "--help"], host=host).output.split())
    assert "--gain" in help_text and "a gain option (default: 1.0)" in help_text
    info = [line.split() for line in run_cli(["info", "gain"], host=host).output.splitlines()]
    assert ["mode", "text", "'mean'", "mean,max", "How", "sources", "combine"] in info


def test_the_core_names_no_plugin_option(run_cli, tmp_path):
    from fusekit.plugins import build_host

    bare = build_host(builtins=["fusekit_classic.plugin"], entry_points=False)
    help_text = run_cli(["fuse", "--help"], host=bare).output
    assert "--task" in help_text and not any(f in help_text for f in ("--weights", "--device", "--stretch"))
    result = run_cli(["fuse", "-m", "focus", "--task", "ivif", EXAMPLES / "ir.png", EXAMPLES / "vi.png",
                      "-o", tmp_path / "f.png"], host=bare)
    assert result.exit_code == 0, result.output
    assert "note: focus does not use --task; --task ivif ignored (it is meant for mfif)" in result.stderr


def test_option_declarations_must_match_init():
    class Wrong(Gain):
        name = "wrong"
        options = (Option("gain", float, 2.0),)

    with pytest.raises(PluginError, match="declares options gain but __init__ takes gain, mode"):
        Wrong.declared_options()
    Wrong.options = (Option("gain", float, 2.0), Option("mode", str, "mean"))
    with pytest.raises(PluginError, match="declares default 2.0 but __init__ has 1.0"):
        Wrong.create()
    with pytest.raises(ParameterError, match="method 'gain': option gain takes a float value, got '2'"):
        Gain.create(gain="2")


def test_local_dask_cluster_is_quiet_when_port_8787_is_taken(run_cli, host, tmp_path):
    pytest.importorskip("dask.distributed")
    import socket

    rng = np.random.default_rng(4)
    for name in ("a", "b"):
        write(tmp_path / "x" / f"{name}.png", rng.integers(0, 256, (12, 12), dtype=np.uint8))
        write(tmp_path / "y" / f"{name}.png", rng.integers(0, 256, (12, 12), dtype=np.uint8))
    with socket.socket() as taken:  # another Dask dashboard, or anything else, on dask's default port
        try:
            taken.bind(("", 8787))
        except OSError:
            pass                    # already taken by someone else: the same situation
        else:
            taken.listen()
        result = run_cli(["fuse", "-m", "average", tmp_path / "x", tmp_path / "y", "-o", tmp_path / "o",
                          "--dask", "local", "-j", "1"], host=host)
    assert result.exit_code == 0, result.output
    assert "8787" not in result.output and "fused 2 of 2 sets" in result.stderr


def test_a_missing_source_folder_is_called_a_folder(run_cli, tmp_path):
    """Folder mode names a missing folder a folder; a missing image stays a file."""
    from .corpus import one_line_error

    examples = Path(__file__).resolve().parents[1] / "examples" / "data"
    nope = tmp_path / "nope"
    line = one_line_error(run_cli(["fuse", "-m", "average", examples / "ivif" / "ir", nope, "-o", tmp_path / "f"]),
                          code=1)
    assert line == f"error: {nope}: folder not found; check the path"
    line = one_line_error(run_cli(["fuse", "-m", "average", nope, tmp_path / "gone", "-o", tmp_path / "f"]), code=1)
    assert line == f"error: {nope}: folder not found; check the path"
    line = one_line_error(run_cli(["fuse", "-m", "average", examples / "ir.png", tmp_path / "b.png",
                                   "-o", tmp_path / "f.png"]), code=1)
    assert line == f"error: {tmp_path / 'b.png'}: file not found; check the path"
    assert not (tmp_path / "f").exists()
