"""bundle.json is checked whole against one schema when a bundle is loaded: any edited field of
the wrong type, out of range or naming an unknown id is `refusing to load FILE: key: problem`,
never a traceback from the code that would have used it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.models import make_model
from scenefusion.models.persistence import ModelLoadError
from scenefusion.predict import load_bundle, save_bundle

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 10)
    model = make_model("logreg").fit(rng.normal(y[:, None], 0.3, (20, 1280)), y)
    folder = tmp_path_factory.mktemp("bundle") / "b"
    save_bundle(model, {
        "name": "image:logreg", "kind": "image", "classes": ["A", "B"],
        "image_backbone": "effnet_lite0", "image_weights": None, "image_precision": "fp32",
        "val_accuracy": 0.9, "test_accuracy": 0.8, "test_accuracy_ci": [0.7, 0.9], "n_test": 4,
        "trained_on": {"data_path": "/data", "layout": "pairs", "synthetic": False,
                       "n_items": 20, "n_groups": 4, "split": "group"},
        "calibration": {"method": "temperature", "temperature": 1.5, "fitted_on": "val",
                        "test_ece_before": 0.1, "test_ece_after": 0.05, "n_items": 6,
                        "applied": True},
    }, folder)
    return folder


def edited(bundle: Path, tmp_path: Path, **fields: object) -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "edited"))
    info = json.loads((bundle / "bundle.json").read_text())
    for key, value in fields.items():
        outer, _, inner = key.partition("__")
        if inner:
            info[outer] = {**info[outer], inner: value}
        else:
            info[outer] = value
    (copy / "bundle.json").write_text(json.dumps(info))
    return copy


def test_the_intact_bundle_loads(bundle):
    assert load_bundle(bundle).temperature == 1.5


def test_a_dict_where_the_weight_path_belongs_is_refused_by_predict_in_one_sentence(bundle,
                                                                                   tmp_path):
    copy = edited(bundle, tmp_path, image_weights={"effnet_lite0": "/etc/hostname"})
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32), "gray").save(image)
    result = runner.invoke(app, ["predict", "--model", str(copy), "--image", str(image)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"refusing to load {copy / 'bundle.json'}: image_weights: Input should be a valid " \
           "string" in text
    assert "Traceback" not in result.output and "TypeError" not in result.output


@pytest.mark.parametrize("fields, problem", [
    ({"image_weights": ["/a.pth"]}, "image_weights: Input should be a valid string"),
    ({"image_weights": 3}, "image_weights: Input should be a valid string"),
    ({"name": {"x": 1}}, "name: Input should be a valid string"),
    ({"kind": ["image"]}, "kind: Input should be a valid string"),
    ({"classes": "AB"}, "classes: Input should be a valid list"),
    ({"classes": ["A", 2]}, "classes.1: Input should be a valid string"),
    ({"image_backbone": 7}, "image_backbone: Input should be a valid string"),
    ({"image_precision": "int4"}, "image_precision: unknown precision 'int4'"),
    ({"audio_source": "microphone"}, "audio_source: Input should be"),
    ({"test_accuracy": "0.9"}, "test_accuracy: Input should be a valid number"),
    ({"test_accuracy": 1.7}, "test_accuracy: Input should be less than or equal to 1"),
    ({"test_accuracy_ci": [0.1]}, "test_accuracy_ci: List should have at least 2 items"),
    ({"n_test": -3}, "n_test: Input should be greater than or equal to 0"),
    ({"n_test": 2.5}, "n_test: Input should be a valid integer"),
    ({"trained_on": "somewhere"}, "trained_on: Input should be a valid dictionary"),
    ({"trained_on__synthetic": "yes"}, "trained_on.synthetic: Input should be a valid boolean"),
    ({"calibration": [1.5]}, "calibration: Input should be a valid dictionary"),
    ({"calibration__temperature": "hot"}, "calibration.temperature: Input should be a valid "
                                          "number"),
    ({"calibration__temperature": 0.0}, "calibration.temperature: Input should be greater "
                                        "than 0"),
    ({"calibration__temperature": -2.0}, "calibration.temperature: Input should be greater "
                                         "than 0"),
    ({"kind": "magic"}, "kind: unknown kind 'magic'"),
    ({"image_backbone": "vgg99"}, "image_backbone: unknown image backbone id 'vgg99'"),
    ({"classes": ["B", "A"]}, "classes: the class names do not match their fingerprint"),
])
def test_every_edited_field_is_refused_naming_the_key(bundle, tmp_path, fields, problem):
    copy = edited(bundle, tmp_path, **fields)
    with pytest.raises(ModelLoadError) as caught:
        load_bundle(copy)
    assert str(caught.value).startswith(f"refusing to load {copy / 'bundle.json'}: {problem}")


def test_several_wrong_fields_are_all_named(bundle, tmp_path):
    copy = edited(bundle, tmp_path, image_weights={"a": 1}, n_test="four")
    with pytest.raises(ModelLoadError, match=r"image_weights: .*; n_test: "):
        load_bundle(copy)
