"""A data layout is one registration: a layout defined here only, in a format of its own, is
found by `auto`, accepted by the config, listed, and carried through a whole `scenefusion run`
into the saved model's provenance; an unknown layout id names the registered ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.config import ConfigError, load_config
from scenefusion.data import LAYOUTS, VideoOptions, detect_layout, load_dataset, register_layout
from scenefusion.data.datasets import derive_group, finish_rows, label_of, row_of, warn_stripped
from scenefusion.data.items import Item, Skip
from scenefusion.data.layouts import AUTO, LoadRequest, Probe
from scenefusion.data.synthetic import make_pairs_folder, make_reference_like, write_manifest

runner = CliRunner()

LAYOUT_ID = "scene-list"
LIST_FILE = "scenes.txt"
#: the list names each class its own way, so the run's classes show the list was read
RENAMED = {"BEACH": "seaside", "CITY": "town", "FOREST": "woods"}
TINY_GRID = {"models": {"image": ["logreg"], "audio": ["logreg"]},
             "fusion": {"early": ["logreg"], "late": ["mean"], "hybrid": []},
             "evaluation": {"n_bootstrap": 0}}


def write_scene_list(root: Path) -> Path:
    """The format of the test's own: ``scenes.txt``, one ``label<TAB>path stem`` per line
    (``<stem>.png`` + ``<stem>.wav``), over a synthetic pairs folder."""
    make_pairs_folder(root, classes=tuple(RENAMED), groups_per_class=3, frames_per_group=3,
                      image_size=32)
    lines = [f"{RENAMED[p.parent.name]}\t{p.relative_to(root).with_suffix('').as_posix()}"
             for p in sorted(root.glob("*/*.png"))]
    lines.append("woods\tFOREST/missing_000")  # a listed pair that is not there: a skip
    (root / LIST_FILE).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture()
def scene_list_layout():
    """Registers the layout for one test and removes it afterwards."""

    def has_list(probe: Probe) -> bool:
        return probe.is_dir and (probe.path / LIST_FILE).is_file()

    @register_layout(LAYOUT_ID, description="scenes.txt: label<TAB>stem per line",
                     detect=has_list)
    def load_scene_list(root: Path, request: LoadRequest):
        rows, stripped = [], set()
        for n, line in enumerate((root / LIST_FILE).read_text().splitlines(), start=1):
            raw_label, stem = line.split("\t")
            label, image = label_of(raw_label, stripped), root / f"{stem}.png"
            if not image.is_file():
                rows.append(row_of(image, Skip(str(image), "listed but not found"), f"line {n}"))
                continue
            item = Item(id=stem, label=label, group=f"{label}/{derive_group(Path(stem).name)}",
                        image=image, audio=image.with_suffix(".wav"))
            rows.append(row_of(image, item, f"line {n}"))
        warn_stripped(stripped, root)
        return finish_rows(rows, request.classes, root, LAYOUT_ID, "derived from file names",
                           check_files=request.check_files, progress=request.progress)

    yield load_scene_list
    LAYOUTS.unregister(LAYOUT_ID)


def test_a_registered_layout_is_found_listed_and_loaded(scene_list_layout, tmp_path):
    root = write_scene_list(tmp_path / "data")
    assert detect_layout(root) == LAYOUT_ID  # before the catch-all folder of pairs
    assert detect_layout(make_pairs_folder(tmp_path / "plain", groups_per_class=1,
                                           frames_per_group=1)) == "pairs"
    dataset = load_dataset(root, check_files=False)
    assert dataset.layout == LAYOUT_ID and dataset.classes == sorted(RENAMED.values())
    assert len(dataset) == 27
    assert [s.reason for s in dataset.skipped] == ["listed but not found"]
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0 and LAYOUT_ID in listed.output


def test_a_registered_layout_runs_through_scenefusion_run(scene_list_layout, tmp_path):
    root = write_scene_list(tmp_path / "data")
    cfg = {"data": {"path": str(root), "layout": LAYOUT_ID}, **TINY_GRID,
           "features": {"cache_dir": str(tmp_path / "cache")},
           "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"}}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert load_config(path).data.layout == LAYOUT_ID
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    bundle = json.loads((tmp_path / "runs/r/best/bundle.json").read_text())
    assert bundle["trained_on"]["layout"] == LAYOUT_ID
    assert bundle["classes"] == sorted(RENAMED.values())
    assert not (tmp_path / "runs/r/INCOMPLETE").exists()


def test_an_unknown_layout_in_a_config_names_the_registered_ones(scene_list_layout, tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump({"data": {"layout": "xml"}}))
    valid = ", ".join(LAYOUTS.list())
    assert LAYOUT_ID in valid and valid.startswith("auto, reference, manifest, pairs")
    with pytest.raises(ConfigError, match=f"data.layout: unknown layout 'xml'; valid layouts: "
                                          f"{valid}"):
        load_config(path)
    result = runner.invoke(app, ["run", str(path)])
    shown = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 1
    assert f"valid layouts: {valid}" in shown and "Traceback" not in shown


def test_a_layout_id_must_be_lower_case():
    with pytest.raises(ValueError, match="lower case"):
        register_layout("Scene List", description="refused")
    assert "Scene List" not in LAYOUTS


# --- every registered layout --------------------------------------------------------------------

def _pairs(tmp: Path) -> Path:
    return make_pairs_folder(tmp / "pairs", groups_per_class=1, frames_per_group=2, image_size=16)


def _videos(tmp: Path) -> Path:
    pytest.importorskip("av")
    from videos import write_video

    for label, freq in (("BEACH", 330.0), ("CITY", 880.0)):
        (tmp / "videos" / label).mkdir(parents=True)
        write_video(tmp / "videos" / label / "clip.mp4", seconds=2, size=32, freq=freq)
    return tmp / "videos"


def _video_manifest(tmp: Path) -> Path:
    folder = _videos(tmp)
    (tmp / "videos.csv").write_text("video,label\n" + "".join(
        f"{p.relative_to(tmp).as_posix()},{p.parent.name}\n"
        for p in sorted(folder.glob("*/*.mp4"))))
    return tmp / "videos.csv"


#: a small data set in each built-in layout (a new built-in layout adds its own here)
EXAMPLES = {
    "reference": lambda tmp: make_reference_like(tmp / "ref", groups_per_class=1,
                                                 frames_per_group=2, image_size=16),
    "manifest": lambda tmp: write_manifest(_pairs(tmp), tmp / "manifest.csv"),
    "pairs": _pairs,
    "videos": _videos,
    "video-manifest": _video_manifest,
}


@pytest.mark.parametrize("layout", [name for name in LAYOUTS.list() if name != AUTO])
def test_every_layout_is_found_by_auto_and_names_itself(layout, tmp_path):
    """What `auto` picks, what the loader reports and what a run's provenance says agree."""
    path = EXAMPLES[layout](tmp_path)
    options = VideoOptions(cache_dir=tmp_path / "cache")
    assert detect_layout(path) == layout
    for asked in (AUTO, layout):
        dataset = load_dataset(path, asked, check_files=False, options=options)
        assert dataset.layout == layout and len(dataset) > 0 and not dataset.skipped
