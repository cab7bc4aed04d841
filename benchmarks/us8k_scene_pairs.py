"""Real sounds paired with real photos, for measuring fusion on content neither modality aces.

    python benchmarks/us8k_scene_pairs.py US8K_OUT SCENES OUT

US8K_OUT is what ``../shared/realcorpus/urbansound8k.py`` writes (audio-only manifest, groups
are upload clusters); SCENES is ``../shared/realcorpus/scenes``. The first nine UrbanSound8K
classes are matched one to one with the nine scene classes (in sorted order); each clip is
paired with a photo of its matched class, each photo used once, so neither a recording nor a
photo is on both sides of a grouped split. The label is the scene class; the group is the
clip's upload cluster. Sound and photo were not recorded together: the pairs measure whether
fusing a real, strong image side (~0.85 on these photos) with a real, weaker audio side
(~0.5 on recordings never heard) helps or hurts, not audio-visual correspondence. Writes
OUT/manifest.csv (image,audio,label,group) with absolute paths; copies nothing.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("us8k", type=Path)
    parser.add_argument("scenes", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.us8k / "manifest.csv", newline="") as fh:
        clips = list(csv.DictReader(fh))
    sounds = sorted({c["label"] for c in clips})[:9]
    scenes = sorted(p.name for p in args.scenes.iterdir() if (p / "images").is_dir())[:9]
    photos = {s: sorted((args.scenes / s / "images").glob("*.jp*g")) for s in scenes}
    for pool in photos.values():
        rng.shuffle(pool)
    rows = []
    for sound, scene in zip(sounds, scenes, strict=True):
        mine = [c for c in clips if c["label"] == sound]
        for clip, photo in zip(mine, photos[scene], strict=False):  # at most one per photo
            rows.append({"image": str(photo.resolve()),
                         "audio": str((args.us8k / clip["audio"]).resolve()),
                         "label": scene, "group": clip["group"]})
        print(f"{scene:>15} <- {sound:<18} {min(len(mine), len(photos[scene]))} pairs")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "audio", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} pairs -> {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
