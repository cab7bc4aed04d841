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

from ..files import FileProblem, read_json_object, written_atomically
from .bundle_schema import BUNDLE_KINDS as BUNDLE_KINDS  # part of this module's API
from .bundle_schema import NEEDS as NEEDS
from .bundle_schema import bundle_problems
from .persistence import ModelLoadError, class_fingerprint, save_model

BUNDLE_FILE = "bundle.json"


def save_bundle(model: Any, info: dict[str, Any], directory: Path) -> Path:
    """Write the model (safe formats, see models.persistence) and its input recipe."""
    directory = Path(directory)
    save_model(model, directory / "model")
    info = {**info, "classes_sha256": class_fingerprint(info["classes"])}
    with written_atomically(directory / BUNDLE_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return directory


def read_bundle_info(file: Path) -> dict[str, Any]:
    """bundle.json, checked whole against its schema (:mod:`.bundle_schema`: types, ranges,
    ids); every problem is a ModelLoadError ``refusing to load FILE: key: problem``."""
    try:
        info = read_json_object(file, required=("name", "kind", "classes"))
    except FileProblem as err:
        raise ModelLoadError(file, err.problem) from None
    problems = bundle_problems(info)
    if problems:
        raise ModelLoadError(file, problems)
    return info
