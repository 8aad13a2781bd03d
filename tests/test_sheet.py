"""fusekit.sheet: the unlabelled layout, and titles and row labels drawn where documented."""

import numpy as np
import pytest

from fusekit.sheet import contact_sheet, default_font_size


def _rows():
    rng = np.random.default_rng(0)
    # mid-grey images (no pixel below 0.3), so dark pixels can only come from text
    grey = lambda *shape: 0.3 + 0.7 * rng.random(shape)  # noqa: E731
    return [[grey(48, 64), grey(48, 64, 3), grey(30, 80)], [grey(60, 40), grey(60, 40)]]


def test_unlabelled_layout_is_unchanged():
    height, gap = 100, 4
    sheet = contact_sheet(_rows(), height=height, gap=gap)
    # rows packed left to right: 133 + 4 + 133 + 4 + 267 for the first row, the widest
    assert sheet.shape == (2 * height + gap, 133 + 133 + 267 + 2 * gap, 3)
    assert sheet.dtype == np.float32
    assert sheet[height:height + gap].min() == 1.0  # white gap between rows
    assert sheet[height + gap:, 67 + gap + 67:].min() == 1.0  # second row padded white on the right


def test_titles_and_row_labels_are_drawn():
    height, gap = 120, 4
    titles = ["ir", "vi", "refusion --weights shipped"]
    sheet = contact_sheet(_rows(), height=height, gap=gap, titles=titles, row_labels=["msrs/00055D", "tno/7"])
    plain = contact_sheet(_rows(), height=height, gap=gap, titles=[""] * 3)
    col_w = [160, 160, 320]  # widest tile of each column at this height (48x64, 48x64, 30x80)
    grid_w = sum(col_w) + 2 * gap
    band_h = plain.shape[0] - (2 * height + gap) - gap
    assert band_h > default_font_size(height)  # an empty title still reserves its line
    label_w = sheet.shape[1] - grid_w - gap
    assert label_w > 0
    assert sheet.shape == (band_h + gap + 2 * height + gap, label_w + gap + grid_w, 3)

    dark = sheet.max(axis=2) < 0.25  # text is near-black; the images never go below 0.3
    title_band = dark[:band_h, label_w + gap:]
    for c, (x0, w) in enumerate(zip(np.cumsum([0] + [w + gap for w in col_w[:-1]]), col_w)):
        assert title_band[:, x0:x0 + w].sum() > 10, f"title of column {c} not drawn"
    row_band = dark[band_h + gap:, :label_w]
    assert row_band[:height].sum() > 10 and row_band[height + gap:].sum() > 10
    assert not dark[band_h + gap:, label_w + gap:].any()  # no text over the images
    # the band around the (anti-aliased) text is white
    assert (sheet[:band_h].min(axis=2) == 1.0).mean() > 0.8


def test_grid_centres_narrow_tiles():
    height, gap = 120, 4
    sheet = contact_sheet(_rows(), height=height, gap=gap, titles=["a", "b"])
    top = sheet.shape[0] - (2 * height + gap)
    second = sheet[top + height + gap:]
    # 60x40 tile -> 80 px wide in a 160 px column: 40 px white either side
    assert second[:, :40].min() == 1.0 and second[:, 120:160].min() == 1.0
    assert second[:, 40:120].min() < 1.0


def test_long_titles_wrap_within_their_column():
    sheet = contact_sheet(_rows(), height=120, titles=["a b c d e f g h i j k l m n o p q r s t u v w x y z"] * 3)
    short = contact_sheet(_rows(), height=120, titles=["a"] * 3)
    assert sheet.shape[1] == short.shape[1]
    assert sheet.shape[0] > short.shape[0]  # more lines, a taller band


def test_label_counts_are_checked():
    with pytest.raises(ValueError, match="titles"):
        contact_sheet(_rows(), height=60, titles=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="row labels"):
        contact_sheet(_rows(), height=60, row_labels=["only one"])
