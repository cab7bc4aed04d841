"""What an explanation adds to a prediction: seconds per picture for `explain_image` beside
`predict_rows` on the same pictures, per image head.

    python benchmarks/explain_speed.py [--pictures 20] [--out benchmarks/results/explain_speed.json]

Image-only bundles (effnet_lite0 + logreg / svm / mlp) are trained on the synthetic demo
pictures (only the timing matters here), then each of ``--pictures`` demo pictures is
predicted alone and explained alone, one at a time as a server answers them. The first call
of each (loading the backbone, exporting ONNX) is left out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scenefusion.cpu import cpu_model
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.explain import explain_image
from scenefusion.features.image import ImageExtractor
from scenefusion.models import make_model
from scenefusion.predict import load_bundle, predict_rows, save_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=20)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "explain_speed.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_pairs_folder(Path(tmp) / "pairs", groups_per_class=4, frames_per_group=4)
        images = sorted(data.glob("*/*.png"))
        extractor = ImageExtractor("effnet_lite0", cache_dir=Path(tmp) / "cache")
        X = extractor.embed(torch.stack([extractor.preprocess(Image.open(p).convert("RGB"))
                                         for p in images]))
        labels = sorted({p.parent.name for p in images})
        y = np.array([labels.index(p.parent.name) for p in images])
        shown = images[: args.pictures]
        for head in ("logreg", "svm", "mlp"):
            folder = Path(tmp) / head
            save_bundle(make_model(head).fit(X, y), {
                "name": f"image:{head}", "kind": "image", "classes": labels,
                "image_backbone": "effnet_lite0", "image_weights": None,
                "audio_features": "mfcc", "audio_source": "raw-audio"}, folder)
            bundle = load_bundle(folder)
            predict_rows(bundle, [shown[0]], [None])  # warm: backbone, ONNX session
            explain_image(bundle, shown[0])           # warm: the torch copy
            start = time.perf_counter()
            for p in shown:
                predict_rows(bundle, [p], [None])
            predict_s = (time.perf_counter() - start) / len(shown)
            start = time.perf_counter()
            methods = {explain_image(bundle, p).method for p in shown}
            explain_s = (time.perf_counter() - start) / len(shown)
            rows.append({"head": head, "predict_s": round(predict_s, 4),
                         "explain_s": round(explain_s, 4), "methods": sorted(methods)})
            print(f"{head:7s} predict {predict_s * 1000:6.1f} ms  explain {explain_s * 1000:6.1f} "
                  f"ms per picture ({', '.join(sorted(methods))})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": f"python benchmarks/explain_speed.py --pictures {args.pictures}",
        "machine": f"{cpu_model()}, "
                   f"{torch.get_num_threads()} torch threads",
        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
