"""The dataset vocabulary: slots and aliases, task detection, image files, pairing by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusekit import TASKS
from fusekit.datasets import (LAYOUTS, detect_layout, detect_task, images_by_stem, is_image_file,
                              pair_by_stem, slot_of, source_folders)
from fusekit.errors import InputError, ParameterError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_every_task_has_slots_and_every_alias_one_slot():
    assert tuple(LAYOUTS) == TASKS
    aliases = [a for slots in LAYOUTS.values() for slot in slots for a in slot.aliases]
    assert len(aliases) == len(set(aliases))
    for task, slots in LAYOUTS.items():
        for index, slot in enumerate(slots):
            assert all(slot_of(a.upper()) == (task, index) for a in slot.aliases)


@pytest.mark.parametrize("names, task", [
    (["under", "over"], "meif"), (["over", "under"], "meif"), (["Infrared", "vis"], "ivif"),
    (["pet", "mri"], "mif"), (["near", "b"], "mfif"),
    (["ir", "mri"], None), (["under", "under"], None), (["under"], None), (["x", "y"], None), ([], None),
])
def test_detect_task_needs_each_slot_of_one_task_once(names, task):
    assert detect_task(names) == task


def test_hidden_and_foreign_files_are_not_images(tmp_path):
    assert is_image_file("a/B.TIFF") and not is_image_file("a/._b.png") and not is_image_file("notes.txt")
    touch(tmp_path / "1.png"), touch(tmp_path / "1.jpg"), touch(tmp_path / ".DS_Store")
    (tmp_path / "sub.png").mkdir()
    assert images_by_stem(tmp_path) == {"1": [tmp_path / "1.jpg", tmp_path / "1.png"]}


def test_pairing_by_stem_reports_missing_and_ambiguous_names(tmp_path):
    for name in ("ir/1.png", "vi/1.jpg", "ir/2.png", "ir/3.png", "vi/3.png", "vi/3.bmp"):
        touch(tmp_path / name)
    sets, problems = pair_by_stem([tmp_path / "ir", tmp_path / "vi"], ["ir/", "vi/"], what="source image")
    assert sets == {"1": (tmp_path / "ir/1.png", tmp_path / "vi/1.jpg")}
    assert problems == {"2": "no source image named '2' in vi/",
                        "3": "several source image files named '3' (3.bmp, 3.png); keep one"}


def test_layout_and_source_folders_accept_every_alias(tmp_path):
    for name in ("infrared", "VIS", ".hidden"):
        (tmp_path / name).mkdir()
    assert detect_layout(tmp_path) == (("infrared", "VIS"), "ivif")
    assert source_folders(tmp_path, "ivif") == (tmp_path / "infrared", tmp_path / "VIS")
    with pytest.raises(InputError, match="needs a sub-folder named under"):
        source_folders(tmp_path, "meif")
    (tmp_path / "ir").mkdir()
    with pytest.raises(InputError, match="several infrared folders"):
        source_folders(tmp_path, "ivif")
    with pytest.raises(InputError, match="no recognised source sub-folders"):
        detect_layout(tmp_path)
    with pytest.raises(ParameterError, match="unknown task"):
        source_folders(tmp_path, "rgb")


def test_canonical_source_order_is_pinned():
    # training stacks sources in slot order and the shipped networks expect it: never reorder
    assert {task: slots[0].folder for task, slots in LAYOUTS.items()} == {
        "ivif": "ir", "mif": "ct", "mfif": "a", "meif": "under"}
