"""What reading a folder of videos costs: cutting a video through the `videos` layout against
`data from-video` on the same file, and a second read that must decode nothing.

    python benchmarks/video_folder.py [--video FILE.mp4] [--seconds 60] [--size 1280x720]
                                      [--out benchmarks/results/video_folder.json]

Without ``--video`` a video is generated (moving gradient frames at 25 fps, a 440 Hz tone) at
the given size and length. Each step runs as its own `scenefusion` process, timed wall clock
including imports: (1) `data from-video VIDEO --label SCENE --out PAIRS`, (2) `data inspect
ROOT` on ``ROOT/SCENE/VIDEO`` with an empty cache (cuts it into the cache), (3) the same again
(must reuse the cut: "0 cut now"). What follows the cut (features, training) is the same
work on the same items in both paths, so it is not timed here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scenefusion.cpu import cpu_model


def generated_video(path: Path, seconds: int, width: int, height: int, fps: int = 25) -> Path:
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        for i in range(seconds * fps):
            frame = np.broadcast_to((ramp + 4 * i) % 256, (height, width, 3)).astype(np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        t = np.arange(44100 * seconds) / 44100
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for start in range(0, wave.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start:start + 1024]),
                                               format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode():
                out.mux(packet)
    return path


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "scenefusion", *args], env=env, text=True,
                          capture_output=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "video_folder.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.video is None:
            width, height = map(int, args.size.split("x"))
            start = time.perf_counter()
            video = generated_video(tmp / "walk.mp4", args.seconds, width, height)
            print(f"generated {video.name} ({args.size}, {args.seconds} s) in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        else:
            video = args.video
        env = {**os.environ, "SCENEFUSION_CACHE": str(tmp / "cache"), "COLUMNS": "200"}
        from_video, _ = timed(["data", "from-video", str(video), "--label", "SCENE", "--out",
                               str(tmp / "pairs")], env)
        root = tmp / "videos" / "SCENE"
        root.mkdir(parents=True)
        shutil.copy(video, root / video.name)
        first, first_out = timed(["data", "inspect", str(tmp / "videos")], env)
        again, again_out = timed(["data", "inspect", str(tmp / "videos")], env)
        cut_line = [ln for ln in again_out.splitlines() if ln.startswith("videos:")]
        items = len(list((tmp / "pairs" / "SCENE").glob("*.jpg")))
    result = {"command": "python benchmarks/video_folder.py " + " ".join(sys.argv[1:]),
              "machine": f"{cpu_model()}, "
                         f"{os.cpu_count()} cores",
              "video": {"file": video.name, "size": args.size, "seconds": args.seconds,
                        "items": items},
              "from_video_s": round(from_video, 2), "layout_first_read_s": round(first, 2),
              "layout_second_read_s": round(again, 2),
              "second_read_says": cut_line[0] if cut_line else again_out[-200:]}
    print(json.dumps(result, indent=1))
    if "1 cut now" not in first_out:
        raise SystemExit("the first read did not cut the video: " + first_out[-400:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
