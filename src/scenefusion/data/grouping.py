"""Which photos of an image-only data set share a source, when nothing records it.

The rule, in one sentence: names are read as frames of videos (grouped by the name without
its trailing number, ``video3_0012.jpg`` -> ``video3``) only when every class holds at least
two such names; otherwise every photo is its own group.

Why: frames of one video are near-duplicates and must stay on one side of a split, but a
folder of photos numbered one after another (MiniPlaces' ``miniplaces_c-coast_00000021.jpg``)
has a single name per class once numbers are dropped, and one group per class can be neither
split nor cross-validated. Whether numbers run consecutively cannot tell the two apart (both
shapes count 1, 2, 3...); how many names a class holds can. Folders with sound beside the
pictures keep the frame rule as it is: there a pair is a second of a recording.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace

from .items import Item

log = logging.getLogger(__name__)

#: Names (once trailing numbers are dropped) every class must hold for names to mark videos.
MIN_NAMES_PER_CLASS = 2


def image_only_groups(items: list[Item]) -> tuple[list[Item], str]:
    """``items`` (grouped by name without trailing number) regrouped by the rule above, and
    the sentence ``Dataset.group_source`` carries to ``data inspect`` and the run notes."""
    names: dict[str, set[str]] = defaultdict(set)
    for item in items:
        names[item.label].add(item.group)
    fewest = min(names, key=lambda label: (len(names[label]), label), default=None)
    if fewest is None or len(names[fewest]) >= MIN_NAMES_PER_CLASS:
        source = (f"derived from file names as frames of videos: every class holds at least "
                  f"{MIN_NAMES_PER_CLASS} names once trailing frame numbers are dropped")
        log.info("groups %s", source)
        return items, source
    source = (f"derived from file names as one group per photo: class {fewest!r} holds "
              f"{len(names[fewest])} name once trailing numbers are dropped, so the names do "
              f"not mark videos (give a manifest 'group' column if photos share a source)")
    log.info("groups %s", source)
    return [replace(item, group=item.id) for item in items], source
