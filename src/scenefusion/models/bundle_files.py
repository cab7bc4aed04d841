"""The files of a model bundle (`RUN_DIR/best`): the model and `bundle.json`, its input recipe.

Written by the experiment and read by predict and serve; it lives here, below both, so saving a
run's best model does not load the prediction code. `bundle.json` is written atomically (a
killed run leaves the old recipe or the new one, never half of one) and is checked when read: a
damaged or edited recipe must not feed the model wrong inputs or relabel its predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..features.audio import audio_feature
from ..features.backbones import IMAGE_BACKBONES
from ..files import FileProblem, read_json_object, written_atomically
from .persistence import ModelLoadError, class_fingerprint, save_model

BUNDLE_FILE = "bundle.json"

#: the modalities each single-model kind needs; late and hybrid models take either
NEEDS = {"image": {"image"}, "audio": {"audio"}, "early": {"image", "audio"}}
BUNDLE_KINDS = frozenset({*NEEDS, "late", "hybrid"})


def save_bundle(model: Any, info: dict[str, Any], directory: Path) -> Path:
    """Write the model (safe formats, see models.persistence) and its input recipe."""
    directory = Path(directory)
    save_model(model, directory / "model")
    info = {**info, "classes_sha256": class_fingerprint(info["classes"])}
    with written_atomically(directory / BUNDLE_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return directory


def read_bundle_info(file: Path) -> dict[str, Any]:
    """bundle.json, checked; every problem is a ModelLoadError naming the file."""
    try:
        info = read_json_object(file, required=("name", "kind", "classes"))
    except FileProblem as err:
        raise ModelLoadError(file, err.problem) from None

    def refuse(problem: str) -> ModelLoadError:
        return ModelLoadError(file, problem)

    classes = info["classes"]
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) and c for c in classes)):
        raise refuse("'classes' must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise refuse("'classes' lists a class name twice")
    if info.get("classes_sha256", class_fingerprint(classes)) != class_fingerprint(classes):
        raise refuse("the class names do not match their fingerprint (reordered or edited: "
                     "predictions would be relabelled)")
    if info["kind"] not in BUNDLE_KINDS:
        raise refuse(f"unknown kind {info['kind']!r}; expected one of {sorted(BUNDLE_KINDS)}")
    audio = info.get("audio_features", "mfcc")
    if info["kind"] != "image":
        try:
            audio_feature(audio)
        except ValueError as err:  # an unknown id (UnknownIdError) or a bad ID@Ns suffix
            raise refuse(str(err)) from None
    # a named backbone is checked even where the kind does not use it: an edited recipe is
    # refused as a whole, whichever model the run happened to pick as best
    backbone = info.get("image_backbone")
    if ((info["kind"] != "audio" or backbone is not None)
            and backbone not in IMAGE_BACKBONES.list()):
        raise refuse(f"unknown image backbone id {backbone!r}")
    return info
