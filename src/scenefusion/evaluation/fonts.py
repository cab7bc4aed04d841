"""Fonts for user text in plots: class and run names are shown as written, in any script.

matplotlib's default font (DejaVu Sans) has no CJK glyphs, so a class named 海滩 would be
drawn as boxes. Where an installed font covers the names (Noto Sans CJK, WenQuanYi, Source
Han Sans, Droid Sans Fallback: Debian's ``fonts-noto-cjk`` or ``fonts-wqy-microhei``), it is
put behind DejaVu Sans as matplotlib's per-glyph fallback; where none does, the plot says
which names it cannot draw and how to fix that, instead of silently showing boxes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator

import matplotlib as mpl
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

#: Font families tried, in order, for characters the default font lacks.
FALLBACK_FAMILIES = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans",
                     "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback")
PRIMARY = "DejaVu Sans"
INSTALL_HINT = "install a CJK font (Debian: fonts-noto-cjk or fonts-wqy-microhei)"


@functools.cache
def _charmap(family: str) -> frozenset[int]:
    """Code points the installed font of ``family`` has glyphs for (empty when absent)."""
    try:
        path = font_manager.findfont(font_manager.FontProperties(family=family),
                                     fallback_to_default=False)
    except ValueError:
        return frozenset()
    return frozenset(FT2Font(path).get_charmap())


@functools.cache
def installed_fallbacks() -> tuple[str, ...]:
    """The :data:`FALLBACK_FAMILIES` installed on this machine."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    if not any(f in names for f in FALLBACK_FAMILIES) and _add_fonts_missing_from_the_cache():
        names = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(f for f in FALLBACK_FAMILIES if f in names)


def _add_fonts_missing_from_the_cache() -> bool:
    """matplotlib lists the system fonts once and caches the list, so a CJK font installed
    after that (``apt-get install fonts-wqy-microhei``) stays invisible to it; add the system
    font files its list lacks. True when any was added."""
    known = {f.fname for f in font_manager.fontManager.ttflist}
    added = False
    for path in font_manager.findSystemFonts():
        if path in known:
            continue
        try:
            font_manager.fontManager.addfont(path)
            added = True
        except (OSError, RuntimeError, ValueError):  # a file FreeType cannot read: not a font
            continue
    return added


def _undrawable(texts: Iterable[str], families: tuple[str, ...]) -> list[str]:
    """The texts with a (visible) character none of ``families`` has."""
    covered = frozenset().union(*(_charmap(f) for f in families))
    return [t for t in texts if any(not ch.isspace() and ord(ch) not in covered for ch in t)]


@contextlib.contextmanager
def fonts_for(texts: Iterable[str]) -> Iterator[str]:
    """A block in which ``texts`` draw with every glyph an installed font has; yields a note
    for the plot ("" when every text can be drawn)."""
    texts = [str(t) for t in texts]
    if not _undrawable(texts, (PRIMARY,)):
        yield ""
        return
    families = (PRIMARY, *installed_fallbacks())
    missing = _undrawable(texts, families)
    note = ""
    if missing:
        shown = ", ".join(f"'{t.encode('ascii', 'backslashreplace').decode()}'"
                          for t in missing[:3])
        note = (f"no installed font can draw some names ({shown}"
                f"{', ...' if len(missing) > 3 else ''}); {INSTALL_HINT}")
    with mpl.rc_context({"font.family": list(families)}):
        yield note
