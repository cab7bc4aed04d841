"""Tests for the torchvision-compatible backbones (no torchvision, no network).

The layout JSON was dumped from torchvision 0.29.1, so matching it means the official ImageNet
weight files load strictly. Numerical equality with torchvision was checked once out of tree.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from scenefusion.features import backbones
from scenefusion.features.backbones import (
    IMAGE_BACKBONES,
    WeightsLoadError,
    WeightsMismatchError,
    WeightsNotFoundError,
    find_weights,
    inception_v3,
    load_weights,
    variants_of,
)

LAYOUT_FILE = Path(__file__).parent / "data" / "torchvision_state_dict_layout.json"
MODEL_IDS = ["vgg16", "vgg19", "resnet50", "inception_v3"]
SPECS = {m: IMAGE_BACKBONES.get(m) for m in MODEL_IDS}


def load_torchvision_weights(model_id, weights=None, **kw):
    spec = IMAGE_BACKBONES.get(model_id)
    return load_weights(spec, weights, variants=variants_of(spec), **kw)


def find_torchvision_weights(model_id, weights=None, **kw):
    spec = IMAGE_BACKBONES.get(model_id)
    return find_weights(spec, weights, variants=variants_of(spec), **kw)


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real cache, and never hit the network."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def _no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    return home


@pytest.fixture(scope="module")
def layout() -> dict[str, list[list]]:
    return json.loads(LAYOUT_FILE.read_text())["models"]


@pytest.fixture(scope="module")
def resnet_state() -> OrderedDict[str, torch.Tensor]:
    torch.manual_seed(0)
    return SPECS["resnet50"].builder().state_dict()


def _checkpoints(home: Path) -> Path:
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_specs_match_official_weights() -> None:
    torchvision = {e.id for e in IMAGE_BACKBONES.entries() if e.obj.weights.source == "torchvision"}
    assert torchvision == {*MODEL_IDS, "resnet50.v1"}
    expected = {
        "vgg16": ("vgg16-397923af.pth", 256, 224, 4096),
        "vgg19": ("vgg19-dcbb9e9d.pth", 256, 224, 4096),
        "resnet50": ("resnet50-11ad3fa6.pth", 232, 224, 2048),
        "inception_v3": ("inception_v3_google-0cc3c7bd.pth", 342, 299, 2048),
    }
    for model_id, (file, resize, crop, dim) in expected.items():
        spec = SPECS[model_id]
        assert spec.id == model_id
        assert (spec.weights.file_name, spec.resize_size, spec.input_size) == (file, resize, crop)
        assert spec.embedding_dim == dim
        assert spec.weights.url == f"https://download.pytorch.org/models/{file}"
        p = spec.preprocessing
        assert p.mean == (0.485, 0.456, 0.406) and p.std == (0.229, 0.224, 0.225)
        assert spec.embedding_layer and spec.description


def test_weight_variants_are_named_ids_not_guessed_from_file_names() -> None:
    v1, v2 = IMAGE_BACKBONES.get("resnet50.v1"), IMAGE_BACKBONES.get("resnet50")
    assert v1.weights.file_name == "resnet50-0676ba61.pth" and v1.resize_size == 256
    assert v2.weights.file_name == "resnet50-11ad3fa6.pth" and v2.resize_size == 232
    assert v1.builder is v2.builder and v1.content_key() != v2.content_key()
    assert variants_of(v2) == [v1]


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_state_dict_layout_matches_torchvision(model_id: str, layout: dict) -> None:
    model = SPECS[model_id].builder()
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == layout[model_id]


# VGG's embedding through a weight file is covered by test_features' loop over every backbone.
@pytest.mark.parametrize("model_id", ["resnet50", "inception_v3"])
def test_load_random_weights_and_embed(model_id: str, tmp_path: Path) -> None:
    spec = SPECS[model_id]
    torch.manual_seed(0)
    state = spec.builder().state_dict()
    path = tmp_path / spec.weights.file_name
    torch.save(state, path)

    model = load_torchvision_weights(model_id, weights=path, allow_download=False)
    assert not model.training
    assert model.weights_path == path
    loaded = model.state_dict()
    probe = next(k for k in state if k.endswith("weight"))
    assert torch.equal(loaded[probe], state[probe])
    del state, loaded

    x = torch.randn(1, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        emb = model.embed(x)
        head = model.fc if hasattr(model, "fc") else model.classifier[6]
        logits = head(emb)  # what forward() computes after embed() in eval mode
    assert emb.shape == (1, spec.embedding_dim)
    assert logits.shape == (1, 1000)
    assert torch.isfinite(emb).all()


def test_missing_weights_offline_raises_helpful_error(_isolated_torch_home: Path) -> None:
    spec = SPECS["vgg16"]
    with pytest.raises(WeightsNotFoundError) as info:
        load_torchvision_weights("vgg16", allow_download=False)
    msg = str(info.value)
    folder = _isolated_torch_home / "hub" / "checkpoints"
    assert spec.weights.file_name in msg
    assert str(folder) in msg
    assert spec.weights.url in msg
    assert "--weights PATH" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_xdg_cache_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(WeightsNotFoundError, match="resnet50-11ad3fa6.pth") as info:
        find_torchvision_weights("resnet50", allow_download=False)
    assert str(tmp_path / "xdg" / "torch" / "hub" / "checkpoints") in str(info.value)


def test_failed_download_raises_helpful_error(_isolated_torch_home: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        find_torchvision_weights("inception_v3", allow_download=True)
    msg = str(info.value)
    assert "network disabled in tests" in msg
    assert "inception_v3_google-0cc3c7bd.pth" in msg
    assert str(_isolated_torch_home / "hub" / "checkpoints") in msg


def test_download_goes_to_hub_checkpoints(
    _isolated_torch_home: Path, monkeypatch: pytest.MonkeyPatch, resnet_state: OrderedDict
) -> None:
    calls = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, **kw: object) -> None:
        calls.append((url, Path(dst), hash_prefix))
        torch.save(resnet_state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = load_torchvision_weights("resnet50")
    target = _isolated_torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert calls == [
        ("https://download.pytorch.org/models/resnet50-11ad3fa6.pth", target, "11ad3fa6")
    ]
    assert model.weights_path == target


def test_weights_found_in_torch_home(_isolated_torch_home: Path, resnet_state: OrderedDict) -> None:
    path = _checkpoints(_isolated_torch_home) / "resnet50-11ad3fa6.pth"
    torch.save(resnet_state, path)
    model = load_torchvision_weights("resnet50", allow_download=False)
    assert model.weights_path == path
    assert torch.equal(model.conv1.weight, resnet_state["conv1.weight"])
    assert find_torchvision_weights("resnet50", allow_download=False) == path


def test_resnet50_v1_file_in_cache_loads_as_its_own_id(
    _isolated_torch_home: Path, resnet_state: OrderedDict
) -> None:
    path = _checkpoints(_isolated_torch_home) / "resnet50-0676ba61.pth"
    torch.save(resnet_state, path)
    assert load_torchvision_weights("resnet50.v1", allow_download=False).weights_path == path
    # the V2 id does not silently take the V1 file (its preprocessing differs): it says which
    with pytest.raises(WeightsNotFoundError, match="weights of 'resnet50.v1'; use --image"):
        load_torchvision_weights("resnet50", allow_download=False)


def test_explicit_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="nope.pth"):
        load_torchvision_weights("resnet50", weights=tmp_path / "nope.pth")


def test_unknown_model_id() -> None:
    with pytest.raises(KeyError, match="unknown image backbone 'alexnet'.*vgg19"):
        find_torchvision_weights("alexnet")


def test_missing_and_unexpected_keys_give_clear_error(
    tmp_path: Path, resnet_state: OrderedDict
) -> None:
    bad = OrderedDict(resnet_state)
    bad["fully_connected.weight"] = bad.pop("fc.weight")
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsMismatchError) as info:
        load_torchvision_weights("resnet50", weights=path)
    msg = str(info.value)
    assert str(path) in msg
    assert "missing keys (1): fc.weight" in msg
    assert "unexpected keys (1): fully_connected.weight" in msg


def test_wrong_shape_and_wrong_model_give_clear_error(
    tmp_path: Path, resnet_state: OrderedDict
) -> None:
    bad = OrderedDict(resnet_state)
    bad["fc.weight"] = torch.zeros(10, 2048)
    path = tmp_path / "shape.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsMismatchError, match=r"fc.weight: file \(10, 2048\)"):
        load_torchvision_weights("resnet50", weights=path)

    # A ResNet file passed for Inception: many mismatches, only the first few are listed.
    with pytest.raises(WeightsMismatchError, match=r"\(\+\d+ more\)") as info:
        load_torchvision_weights("inception_v3", weights=path)
    assert len(str(info.value)) < 2000


def test_unreadable_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsLoadError, match="garbage.pth"):
        load_torchvision_weights("resnet50", weights=path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsLoadError, match="not a state_dict"):
        load_torchvision_weights("resnet50", weights=path)


def test_old_checkpoint_without_num_batches_tracked_loads(
    tmp_path: Path, resnet_state: OrderedDict
) -> None:
    old = OrderedDict((k, v) for k, v in resnet_state.items() if "num_batches_tracked" not in k)
    path = tmp_path / "old.pth"
    torch.save(old, path)
    model = load_torchvision_weights("resnet50", weights=path)
    assert torch.equal(model.bn1.running_var, resnet_state["bn1.running_var"])


def test_inception_transform_input_matches_minus_one_one_scaling() -> None:
    """Mean/std-normalised input with transform_input=True must equal [-1, 1] input without."""
    torch.manual_seed(0)
    a = inception_v3(transform_input=True).eval()
    b = inception_v3(transform_input=False).eval()
    b.load_state_dict(a.state_dict())
    pixels = torch.rand(1, 3, 139, 139)
    mean = torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ea = a.embed((pixels - mean) / std)
        eb = b.embed((pixels - 0.5) / 0.5)
    assert torch.allclose(ea, eb, atol=1e-4, rtol=1e-4)
    assert ea.shape == (1, 2048)


def test_inception_forward_with_aux() -> None:
    model = inception_v3().eval()  # the aux head needs the 17x17 grid of a 299 input
    with torch.no_grad():
        logits, aux = model.forward_with_aux(torch.randn(1, 3, 299, 299))
    assert logits.shape == aux.shape == (1, 1000)
    assert inception_v3(aux_logits=False).AuxLogits is None


def test_multicrop_averages_ten_views_of_the_same_network(tmp_path):
    import torch

    from scenefusion.features.image import ImageExtractor

    net = ImageExtractor("effnet_lite0.multicrop", runtime="torch", cache_dir=tmp_path).model
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    views = [x[:, :, 16:240, 16:240], x[:, :, :224, :224], x[:, :, :224, 32:],
             x[:, :, 32:, :224], x[:, :, 32:, 32:]]
    views += [v.flip(3) for v in views]
    with torch.inference_mode():
        each = torch.stack([net.feature_map(v).mean(dim=(2, 3)) for v in views])
        got = net.embed(x)
    assert got.shape == (2, 1280) and got.abs().mean() > 0.01  # real weights, real values
    torch.testing.assert_close(got, each.mean(0), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(got, each[0], rtol=1e-2, atol=0)  # not just the centre crop


def test_the_lite_pair_embeds_both_networks_side_by_side(tmp_path):
    import torch

    from scenefusion.features.image import ImageExtractor

    def net(backbone: str):
        return ImageExtractor(backbone, runtime="torch", cache_dir=tmp_path).model

    x = torch.randn(1, 3, 260, 260, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        pair = net("effnet_lite0_lite2").embed(x)
        alone = torch.cat([net("effnet_lite0").embed(x), net("effnet_lite2").embed(x)], dim=1)
    assert pair.shape == (1, 2560) and pair.abs().mean() > 0.01  # both packages' weights
    torch.testing.assert_close(pair, alone, rtol=1e-4, atol=1e-6)
