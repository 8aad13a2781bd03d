"""The README's Python examples run as written (documentation that users copy must not drift)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fusekit.io import read_image

REPO = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_python_example_fuses_the_demo_pair(tmp_path, monkeypatch, torch_one_thread):
    blocks = _python_blocks()
    assert blocks, "the README lost its Python example"
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    fused = read_image(tmp_path / "out" / "fused.png")
    assert fused.shape == (480, 640, 3)                      # colour kept from the visible image
    assert float(np.std(fused)) > 0.05                        # a real image, not a flat one


def test_readme_first_sections_use_only_files_in_the_repository():
    """The shell examples before "Train" name only inputs a fresh clone has (no ../shared/data)."""
    text = (REPO / "README.md").read_text()
    first = text[text.index("## Set up"):text.index("## Train")]
    commands = "\n".join(re.findall(r"```bash\n(.*?)```", first, flags=re.S))
    assert "shared/data" not in commands
    paths = set(re.findall(r"examples/data/[\w./-]+", commands))
    assert len(paths) >= 8                                    # one pair per task, at least
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"README names files a clone lacks: {missing}"
    for task in ("ivif", "mif", "mfif", "meif"):
        assert f"--task {task} examples/data/{task}/" in commands  # one command per task


#: Options of the README's commands that name a file or folder fusekit writes.
_OUTPUT_OPTIONS = ("-o", "--output", "--report", "--checkpoint", "--card", "--log", "--loss-log")


def test_readme_commands_write_only_under_the_ignored_out_folder():
    """Running the README's examples from the clone root leaves no new file outside ``out/``."""
    text = (REPO / "README.md").read_text()
    commands = "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.S))
    written = []
    for line in commands.splitlines():
        words = line.split("#")[0].split()
        written += [words[i + 1] for i, w in enumerate(words[:-1]) if w in _OUTPUT_OPTIONS]
    written += re.findall(r"write_image\(\"([^\"]+)\"", "\n".join(_python_blocks()))
    assert len(written) >= 15, written
    stray = sorted({w for w in written if not w.startswith("out/")})
    assert not stray, f"README commands write outside out/: {stray}"
    ignored = [line.strip() for line in (REPO / ".gitignore").read_text().splitlines()]
    assert "/out/" in ignored or "out/" in ignored
