"""A bundle whose image weight file is damaged, hostile or not a weight file at all ends
`predict` and `serve` in one sentence naming the file (exit 1), never a traceback, and the
file's payload never runs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.models import LateFusion, make_model
from scenefusion.predict import save_bundle

runner = CliRunner()


class _Payload:
    """Unpickling this would create the file it names."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _weights(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"weights-{kind}.pth"
    if kind == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 50)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(_Payload(tmp_path / "payload-ran")))
    elif kind == "passwd":
        return Path("/etc/passwd")
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return make_pairs_folder(tmp_path_factory.mktemp("w") / "pairs", classes=("A", "B"),
                             groups_per_class=1, frames_per_group=1)


def _bundle(tmp_path: Path, weights: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 10)
    model = LateFusion({"image": make_model("logreg"), "audio": make_model("logreg")}).fit(
        {"image": rng.normal(y[:, None], 0.3, (20, 1280)),
         "audio": rng.normal(y[:, None, None], 0.3, (20, 8, 13))}, y)
    save_bundle(model, {"name": "late:mean:t", "kind": "late", "classes": ["A", "B"],
                        "image_backbone": "effnet_lite0", "image_weights": str(weights),
                        "audio_features": "mfcc", "audio_source": "raw-audio"}, tmp_path / "b")
    return tmp_path / "b"


def _one_sentence(result, weights: Path) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    first = next(i for i, ln in enumerate(lines) if ln.startswith("error:"))
    message = " ".join(lines[first:])  # rich wraps a long sentence over lines
    assert f"refusing to load {weights}" in message.replace("\n", ""), message


@pytest.mark.parametrize("kind", ["garbage", "empty", "pickle", "passwd"])
def test_predict_with_a_broken_weight_file_is_one_sentence(tmp_path, pairs, kind):
    weights = _weights(tmp_path, kind)
    bundle = _bundle(tmp_path, weights)
    result = runner.invoke(app, ["predict", "--model", str(bundle), "--image",
                                 str(pairs / "A" / "a0_000.png")], terminal_width=400)
    _one_sentence(result, weights)
    assert not (tmp_path / "payload-ran").exists()
    assert json.loads((bundle / "bundle.json").read_text())["image_weights"] == str(weights)


@pytest.mark.parametrize("kind", ["garbage", "pickle"])
def test_serve_with_a_broken_weight_file_is_one_sentence_before_it_listens(tmp_path, kind,
                                                                           monkeypatch):
    import uvicorn

    weights = _weights(tmp_path, kind)
    bundle = _bundle(tmp_path, weights)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("serve started listening"))
    result = runner.invoke(app, ["serve", str(bundle)], terminal_width=400)
    _one_sentence(result, weights)
    assert not (tmp_path / "payload-ran").exists()


@pytest.mark.parametrize(("kind", "saved"), [("image", "a late-fusion model"),
                                             ("audio", "a late-fusion model"),
                                             ("early", "a late-fusion model")])
def test_a_bundle_whose_kind_was_edited_is_refused_by_name(tmp_path, kind, saved):
    from scenefusion.models.persistence import ModelLoadError
    from scenefusion.predict import load_bundle

    bundle = _bundle(tmp_path, Path("unused.pth"))
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "kind": kind}))
    with pytest.raises(ModelLoadError, match=f"bundle.json: 'kind' is '{kind}' but the saved "
                                             f"model is {saved}"):
        load_bundle(bundle)
    result = runner.invoke(app, ["predict", "--model", str(bundle), "--audio", "x.wav"],
                           terminal_width=400)
    assert result.exit_code == 1 and "'kind' is" in result.output
    assert "Traceback" not in result.output


def test_an_image_bundle_whose_model_does_not_fit_the_backbone_is_refused(tmp_path):
    from scenefusion.models.persistence import ModelLoadError
    from scenefusion.predict import load_bundle

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 10)
    model = make_model("logreg").fit(rng.normal(y[:, None], 0.3, (20, 64)), y)
    save_bundle(model, {"name": "image:x", "kind": "image", "classes": ["A", "B"],
                        "image_backbone": "effnet_lite0"}, tmp_path / "b")
    with pytest.raises(ModelLoadError, match="takes 64 features, but effnet_lite0 embeds "
                                             "images as 1280"):
        load_bundle(tmp_path / "b")
