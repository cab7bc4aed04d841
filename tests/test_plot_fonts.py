"""Class names in any script are drawn as written in the plots (CJK through an installed
fallback font), or the plot says which names it cannot draw: never silent boxes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from scenefusion.evaluation import fonts
from scenefusion.evaluation.plots import plot_confusion_matrix

NO_CJK_FONT = "no CJK font installed here: apt-get install -y fonts-wqy-microhei"
CJK = ["海滩", "城市", "森林"]


def _missing_glyph_warnings(tmp_path, names) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_confusion_matrix(np.eye(len(names), dtype=int) * 3, names, tmp_path / "cm.png")
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


@pytest.mark.skipif(not fonts.installed_fallbacks(), reason=NO_CJK_FONT)
def test_cjk_class_names_render_without_missing_glyphs(tmp_path):
    assert _missing_glyph_warnings(tmp_path, CJK) == []
    with fonts.fonts_for(CJK) as note:
        assert note == ""


@pytest.mark.filterwarnings("ignore:Glyph")
def test_without_a_cjk_font_the_plot_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, "installed_fallbacks", lambda: ())
    with fonts.fonts_for(["BEACH", *CJK]) as note:
        assert "no installed font can draw some names" in note
        assert "\\u6d77\\u6ee9" in note and "fonts-noto-cjk" in note and "BEACH" not in note
    plot_confusion_matrix(np.eye(3, dtype=int), CJK, tmp_path / "cm.png")  # still written
    assert (tmp_path / "cm.png").stat().st_size > 0


def test_latin_names_change_nothing():
    with fonts.fonts_for(["BEACH", "café", "$x$"]) as note:
        assert note == ""


@pytest.mark.skipif(not fonts.installed_fallbacks(), reason=NO_CJK_FONT)
def test_a_cjk_font_installed_after_matplotlib_listed_the_fonts_is_found(monkeypatch):
    from matplotlib import font_manager

    found = fonts.installed_fallbacks()
    # matplotlib's cached list as it was before the font (every face of its files) was installed
    files = {f.fname for f in font_manager.fontManager.ttflist if f.name in found}
    stale = [f for f in font_manager.fontManager.ttflist if f.fname not in files]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    fonts.installed_fallbacks.cache_clear()
    try:
        assert fonts.installed_fallbacks() == found
    finally:
        fonts.installed_fallbacks.cache_clear()
