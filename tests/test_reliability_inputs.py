"""Bad inputs: the image and audio readers refuse bombs and damaged files by name and
never return silently wrong pixels or samples (16-bit, EXIF, alpha, antiphase, DC)."""

from __future__ import annotations

import io
import resource
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from scenefusion.data import DataError, load_dataset
from scenefusion.data.validate import MAX_IMAGE_PIXELS, open_image_rgb, read_audio

SR = 16000


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A tiny valid-looking PNG whose header declares any size (IHDR patched, CRC fixed)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def tone(seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- image: silent wrong pixels --------------------------------------------------------------

def test_16_bit_png_is_scaled_not_clipped_to_white(tmp_path):
    grey = np.full((32, 64), 16384, np.uint16)
    grey[:, 32:] = 49152                                           # 25 % and 75 % of full scale
    Image.fromarray(grey).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    rgb = open_image_rgb(tmp_path / "deep.png")
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (64, 64, 64)
    assert rgb.getpixel((40, 0)) == (191, 191, 191)


@pytest.mark.parametrize("mode", ["I;16B", "I", "F"])
def test_other_high_depth_modes_keep_relative_brightness(tmp_path, mode):
    grey = np.full((16, 32), 16384, np.uint16)
    grey[:, 16:] = 49152
    if mode == "I;16B":
        img = Image.frombytes(mode, (32, 16), grey.astype(">u2").tobytes())
    else:
        img = Image.fromarray(grey).convert(mode)
    img.save(tmp_path / "deep.tiff")
    rgb = open_image_rgb(tmp_path / "deep.tiff")
    assert rgb.getpixel((0, 0)) == (64, 64, 64) and rgb.getpixel((20, 0)) == (191, 191, 191)


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))                 # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6                                         # display rotated 90 degrees clockwise
    img.save(tmp_path / "phone.jpg", exif=exif)
    rgb = open_image_rgb(tmp_path / "phone.jpg")
    assert rgb.size == (20, 40)
    top, bottom = rgb.getpixel((10, 5)), rgb.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 50                      # red on top
    assert bottom[2] > 200 and bottom[0] < 50                # blue below


def test_transparent_pixels_become_white_and_opaque_alpha_is_just_dropped(tmp_path):
    rgba = Image.new("RGBA", (16, 16), (0, 0, 0, 0))        # hidden colour: black
    rgba.paste((10, 200, 30, 255), (0, 0, 8, 16))
    rgba.save(tmp_path / "cutout.png")
    rgb = open_image_rgb(tmp_path / "cutout.png")
    assert rgb.getpixel((2, 2)) == (10, 200, 30) and rgb.getpixel((12, 2)) == (255, 255, 255)

    Image.new("RGBA", (16, 16), (9, 8, 7, 255)).save(tmp_path / "opaque.png")
    assert open_image_rgb(tmp_path / "opaque.png").getpixel((3, 3)) == (9, 8, 7)

    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 50, 60, 70] + [0] * 762)
    palette.paste(0, (0, 0, 8, 16))
    palette.save(tmp_path / "pal.png", transparency=0)
    rgb = open_image_rgb(tmp_path / "pal.png")
    assert rgb.getpixel((2, 2)) == (255, 255, 255) and rgb.getpixel((12, 2)) == (50, 60, 70)


def test_cmyk_and_grey_alpha_images_convert_to_rgb(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "print.jpg")
    red = open_image_rgb(tmp_path / "print.jpg").getpixel((4, 4))
    assert red[0] > 200 and red[1] < 50 and red[2] < 50
    Image.new("LA", (16, 16), (100, 255)).save(tmp_path / "la.png")
    assert open_image_rgb(tmp_path / "la.png").getpixel((0, 0)) == (100, 100, 100)


# --- image: bombs and extreme shapes ---------------------------------------------------------

def test_decompression_bomb_is_refused_by_name_without_decoding(tmp_path):
    bomb = png_claiming_size(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 200
    before = max_rss_mb()
    with pytest.raises(DataError, match=r"bomb\.png: image too large.*400000000 pixels"):
        open_image_rgb(bomb)
    assert max_rss_mb() - before < 100                       # 20000 x 20000 x 3 would be 1.2 GB


@pytest.mark.parametrize("width, height", [(9000, 9000), (12000, 12000)])
def test_images_over_our_pixel_limit_are_refused_with_their_size(tmp_path, width, height):
    """9000 x 9000 is under PIL's own limits; 12000 x 12000 only triggers PIL's warning, which
    must not escape, not even when warnings are errors."""
    assert width * height > MAX_IMAGE_PIXELS
    big = png_claiming_size(tmp_path / "big.png", width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=rf"big\.png: image too large \({width}x{height} "):
            open_image_rgb(big)


def test_long_thin_strip_is_refused_before_resizing_blows_up(tmp_path):
    Image.new("L", (100000, 8)).save(tmp_path / "strip.png")
    assert (tmp_path / "strip.png").stat().st_size < 10_000
    with pytest.raises(DataError, match=r"strip\.png: image too large \(100000x8\)"):
        open_image_rgb(tmp_path / "strip.png")
    Image.new("L", (4000, 100)).save(tmp_path / "banner.png")
    with pytest.raises(DataError, match=r"banner\.png: image aspect ratio too extreme "
                                        r"\(4000x100, 40:1\)"):
        open_image_rgb(tmp_path / "banner.png")


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    Image.new("L", (8200, 8000), 128).save(tmp_path / "huge.jpg")    # 65.6 MP, over the limit
    rgb = open_image_rgb(tmp_path / "huge.jpg")                       # ...but drafted at 1/4
    assert rgb.mode == "RGB" and rgb.size == (2050, 2000)


def test_large_png_is_reduced_but_keeps_enough_resolution(tmp_path):
    Image.new("RGB", (4400, 2200), (1, 2, 3)).save(tmp_path / "wide.png")
    rgb = open_image_rgb(tmp_path / "wide.png")
    assert rgb.size == (2200, 1100) and rgb.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize(
    "error",
    [IndexError("tile out of range"), MemoryError(), Image.DecompressionBombWarning("too big"),
     Image.DecompressionBombError("too big"), SyntaxError("bad header")],
)
def test_any_pil_failure_becomes_a_named_data_error(tmp_path, monkeypatch, error):
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")

    def failing_open(*args, **kwargs):
        raise error

    monkeypatch.setattr(Image, "open", failing_open)
    with pytest.raises(DataError, match=r"x\.png: (corrupt|image too large)"):
        open_image_rgb(tmp_path / "x.png")


def test_loader_reports_bomb_and_truncated_audio_as_skips(pairs_copy):
    beach = pairs_copy / "BEACH"
    png_claiming_size(beach / "beach0_000.png", 20000, 20000)
    wav = (beach / "beach1_000.wav").read_bytes()
    (beach / "beach1_000.wav").write_bytes(wav[: len(wav) // 2])
    ds = load_dataset(pairs_copy)
    why = {s.path.rsplit("/", 1)[-1]: s.reason for s in ds.skipped}
    assert "image too large" in why["beach0_000.png"]
    assert "audio is truncated" in why["beach1_000.wav"]
    assert len(ds) == 12 - 2


# --- audio ---------------------------------------------------------------------------------------

def test_wav_cut_off_mid_data_is_reported_truncated(tmp_path):
    sf.write(tmp_path / "full.wav", tone(), SR, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * 6000 + 1])   # mid-sample, too
    with pytest.raises(DataError, match=r"cut\.wav: audio is truncated: header says 16000 "
                                        r"samples, file holds 6000"):
        read_audio(tmp_path / "cut.wav")


def test_streamed_wav_with_placeholder_size_is_read_in_full(tmp_path):
    sf.write(tmp_path / "pipe.wav", tone(), SR, subtype="PCM_16")
    data = bytearray((tmp_path / "pipe.wav").read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"                     # what ffmpeg writes to a pipe
    (tmp_path / "pipe.wav").write_bytes(bytes(data))
    audio, _ = read_audio(tmp_path / "pipe.wav")
    assert audio.shape == (SR,)


def test_antiphase_stereo_is_not_silent_and_keeps_the_signal(tmp_path):
    left = tone()
    sf.write(tmp_path / "inverted.wav", np.stack([left, -left], axis=1), SR, subtype="FLOAT")
    audio, _ = read_audio(tmp_path / "inverted.wav")
    np.testing.assert_array_equal(audio, left)


@pytest.mark.parametrize("levels", [(0.3,), (0.3, -0.2)])
def test_constant_dc_signal_is_rejected(tmp_path, levels):
    sf.write(tmp_path / "dc.wav", np.tile(np.float32(levels), (SR, 1)), SR, subtype="FLOAT")
    with pytest.raises(DataError, match=r"dc\.wav: audio is constant \(DC\)"):
        read_audio(tmp_path / "dc.wav")


def test_normal_mono_and_stereo_samples_are_unchanged(tmp_path):
    rng = np.random.default_rng(3)
    stereo = np.stack([tone(), 0.5 * tone(freq=300) + 0.01 * rng.standard_normal(SR)], axis=1)
    half_silent = np.stack([tone(), np.zeros(SR, np.float32)], axis=1)
    for name, samples in [("mono.wav", tone()), ("stereo.wav", stereo),
                          ("half.wav", half_silent)]:
        sf.write(tmp_path / name, samples, SR, subtype="PCM_16")
        expected = sf.read(tmp_path / name, dtype="float32", always_2d=True)[0].mean(axis=1)
        audio, sr = read_audio(tmp_path / name)
        assert sr == SR
        np.testing.assert_array_equal(audio, expected)
