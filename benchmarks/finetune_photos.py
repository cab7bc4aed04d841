"""Does fine-tuning the backbone's last blocks beat a classifier on frozen embeddings?

    python benchmarks/finetune_photos.py --scenes ../shared/realcorpus/scenes \
        [--backbone effnet_lite0] [--train-from 15] [--views 3] [--epochs 10] [--folds 5] \
        [--out FILE.json]

Real photos of the nine classes (the corpus's ``scenes/<CLASS>/images``), every photo its own
group, stratified k-fold over photos. On 2 CPU cores back-propagating through a whole
EfficientNet for thousands of photos per epoch does not fit the budget, so the frozen part of
the network (stem + blocks before ``--train-from``) is run once per photo and view and its
activations are kept in memory: view 0 is the backbone's own evaluation preprocessing, views
1.. are augmented (random resized crop, mirror, brightness / contrast / colour jitter). The
blocks from ``--train-from`` on, the head convolution and a new linear layer are trained with
AdamW (pretrained parts at a tenth of the head's rate), each epoch on one random view per
photo, early-stopped on a stratified tenth of the training photos; test photos are scored on
view 0. The baseline is logistic regression and an SVM on the frozen 1280-d embedding (view 0)
of the same folds. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn
from torch.nn import functional as F

from scenefusion.cpu import cpu_model
from scenefusion.features.image import ImageExtractor, preprocess
from scenefusion.models import make_model

RESULTS = Path(__file__).parent / "results" / "finetune_photos.json"


def photos(scenes: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    classes = sorted(c.name for c in scenes.iterdir() if (c / "images").is_dir())
    paths, labels = [], []
    for k, c in enumerate(classes):
        for p in sorted((scenes / c / "images").glob("*.jp*g")):
            paths.append(p)
            labels.append(k)
    return paths, np.array(labels), classes


def augmented(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Random resized crop (35-100% of the area, aspect 3/4-4/3), mirror, colour jitter."""
    w, h = image.size
    for _ in range(10):
        area = w * h * rng.uniform(0.35, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if cw <= w and ch <= h:
            left, top = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            image = image.crop((left, top, left + cw, top + ch))
            break
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.7, 1.3))
    return image


class Trunk(nn.Module):
    """Stem + the first ``cut`` blocks of an EfficientNet(-Lite): frozen, run once."""

    def __init__(self, net: nn.Module, cut: int) -> None:
        super().__init__()
        self.net, self.cut = net, cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[: self.cut]:
            x = block(x)
        return x


class Top(nn.Module):
    """The blocks from ``cut`` on, the head convolution and a new classifier: trained."""

    def __init__(self, net: nn.Module, cut: int, n_classes: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.blocks = copy.deepcopy(net._blocks[cut:])
        self.conv_head, self.bn1 = copy.deepcopy(net._conv_head), copy.deepcopy(net._bn1)
        self.act = copy.deepcopy(net._swish)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.conv_head.out_channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = self.act(self.bn1(self.conv_head(x))).mean(dim=(2, 3))
        return self.fc(self.drop(x))


def trunk_views(extractor: ImageExtractor, paths: list[Path], cut: int, views: int,
                seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """(views, N, C, H, W) float16 trunk activations and (N, D) frozen embeddings of view 0."""
    trunk = Trunk(extractor.model, cut).eval()
    rng = np.random.default_rng(seed)
    spec = extractor.spec
    size = spec.input_size
    out, embeddings = None, []
    start = time.perf_counter()
    for i0 in range(0, len(paths), 32):
        chunk = [Image.open(p).convert("RGB") for p in paths[i0:i0 + 32]]
        for v in range(views):
            batch = torch.stack([preprocess(im, spec) if v == 0 else
                                 _scaled(augmented(im, rng), size, spec) for im in chunk])
            with torch.inference_mode():
                act = trunk(batch)
                if v == 0:
                    embeddings.append(extractor.model.embed(batch).numpy())
            if out is None:
                out = torch.empty((views, len(paths), *act.shape[1:]), dtype=torch.float16)
            out[v, i0:i0 + len(chunk)] = act.half()
        if i0 % 640 == 0:
            print(f"  trunk {i0 + len(chunk)}/{len(paths)} photos x {views} views "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return out, np.concatenate(embeddings)


def _scaled(image: Image.Image, size: int, spec) -> torch.Tensor:
    """An augmented crop straight to the input size, normalised like the eval view."""
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    p = spec.preprocessing
    array = (array - np.array(p.mean, np.float32)) / np.array(p.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def train_top(net: nn.Module, cut: int, acts: torch.Tensor, y: np.ndarray, train: np.ndarray,
              n_classes: int, epochs: int, seed: int, lr: float = 1e-3,
              batch_size: int = 64, patience: int = 3) -> Top:
    torch.manual_seed(seed)
    fit, val = train_test_split(train, test_size=max(len(train) // 10, n_classes),
                                stratify=y[train], random_state=seed)
    top = Top(net, cut, n_classes)
    pretrained = [p for n, p in top.named_parameters() if not n.startswith("fc.")]
    optimiser = torch.optim.AdamW([{"params": pretrained, "lr": lr / 10},
                                   {"params": top.fc.parameters(), "lr": lr}],
                                  weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    yt = torch.from_numpy(y)
    best, best_state, stale = np.inf, None, 0
    for epoch in range(epochs):
        top.train()
        order = torch.from_numpy(fit)[torch.randperm(len(fit), generator=generator)]
        view = torch.randint(1, acts.shape[0], (len(order),), generator=generator) \
            if acts.shape[0] > 1 else torch.zeros(len(order), dtype=torch.long)
        for b in range(0, len(order), batch_size):
            idx, v = order[b:b + batch_size], view[b:b + batch_size]
            x = acts[v, idx].float()
            loss = F.cross_entropy(top(x), yt[idx], label_smoothing=0.1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        top.eval()
        with torch.inference_mode():
            val_loss = float(F.cross_entropy(top(acts[0, val].float()), yt[val]))
        print(f"    epoch {epoch + 1} val loss {val_loss:.3f}", flush=True)
        if val_loss < best:
            best, best_state, stale = val_loss, copy.deepcopy(top.state_dict()), 0
        else:
            stale += 1
            if stale >= patience:
                break
    top.load_state_dict(best_state)
    return top.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, required=True)
    parser.add_argument("--backbone", default="effnet_lite0")
    parser.add_argument("--train-from", type=int, default=15)
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    paths, y, classes = photos(args.scenes)
    extractor = ImageExtractor(args.backbone, runtime="torch")
    start = time.perf_counter()
    acts, emb = trunk_views(extractor, paths, args.train_from, args.views, args.seed)
    trunk_s = time.perf_counter() - start
    print(f"{len(paths)} photos, {len(classes)} classes; trunk activations "
          f"{tuple(acts.shape)} in {trunk_s:.0f} s", flush=True)
    preds = {k: np.empty_like(y) for k in ("finetune", "logreg", "svm")}
    fold_acc: dict[str, list[float]] = {k: [] for k in preds}
    train_s = []
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    for f, (train, test) in enumerate(folds.split(emb, y)):
        t0 = time.perf_counter()
        top = train_top(extractor.model, args.train_from, acts, y, train, len(classes),
                        args.epochs, args.seed + f)
        train_s.append(time.perf_counter() - t0)
        with torch.inference_mode():
            preds["finetune"][test] = top(acts[0, test].float()).argmax(1).numpy()
        for m in ("logreg", "svm"):
            preds[m][test] = make_model(m, random_state=args.seed).fit(
                emb[train], y[train]).predict(emb[test])
        for k in preds:
            fold_acc[k].append(float(np.mean(preds[k][test] == y[test])))
        print(f"fold {f}: " + " ".join(f"{k}={v[-1]:.3f}" for k, v in fold_acc.items())
              + f" ({train_s[-1]:.0f} s)", flush=True)
    rows = []
    for k, p in preds.items():
        recall = {c: round(float(np.mean(p[y == i] == i)), 3) for i, c in enumerate(classes)}
        rows.append({"model": k, "accuracy": round(float(np.mean(p == y)), 4),
                     "fold_min": round(min(fold_acc[k]), 4),
                     "fold_max": round(max(fold_acc[k]), 4), "recall": recall})
        print(f"{k:10s} {rows[-1]['accuracy']:.3f} [{rows[-1]['fold_min']:.3f}-"
              f"{rows[-1]['fold_max']:.3f}] min recall {min(recall.values()):.3f} "
              f"({min(recall, key=recall.get)})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python benchmarks/finetune_photos.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "machine": f"{cpu_model()}, {torch.get_num_threads()} torch threads",
        "photos": len(paths), "classes": classes, "trunk_seconds": round(trunk_s, 1),
        "train_seconds_per_fold": [round(s, 1) for s in train_s], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
