"""Every pixel mode Pillow opens is read as 8-bit RGB the way the mode means it, or refused by name.

Each mode is checked on two images whose contents differ, against the RGB computed here with numpy from the raw
values (16-bit scaled by 255/65535, transparency composited onto white, palettes looked up), both for PIL images
handed to an ``Example`` and for encoded files read lazily. A plain ``convert("RGB")`` clips 16-bit grayscale to
white, so two different 16-bit photos gave the same vectors.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from savs.data import from_folder
from savs.examples import Example, ImageModeError, LazyImage, decode, to_rgb

RNG = np.random.default_rng(0)


def _gray16(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (6, 5)).astype(np.uint16)  # (H, W)


def _expected_16(values: np.ndarray) -> np.ndarray:
    gray = np.rint(values.astype(np.float64) * 255 / 65535).astype(np.uint8)  # (H, W)
    return np.repeat(gray[..., None], 3, axis=2)  # (H, W, 3)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255  # (H, W, 1)
    return np.rint(rgb * a + 255 * (1 - a)).astype(np.uint8)  # (H, W, 3)


def _cases(seed: int) -> dict[str, tuple[Image.Image, np.ndarray]]:
    """mode -> (an image of that mode, its RGB computed here)."""
    rng = np.random.default_rng(seed)
    v16 = _gray16(seed)
    gray = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    alpha = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 4, (6, 5), dtype=np.uint8)
    bits = rng.integers(0, 2, (6, 5)).astype(bool)
    p = Image.fromarray(index).convert("P")
    p.putpalette(palette.tobytes())
    p_clear = p.copy()
    p_clear.info["transparency"] = 2  # palette entry 2 is see-through
    clear = palette[index].copy()
    clear[index == 2] = 255
    cmy = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    gray3 = np.repeat(gray[..., None], 3, axis=2)  # (H, W, 3)
    return {
        "I;16": (Image.fromarray(v16), _expected_16(v16)),
        "I;16B": (Image.frombytes("I;16B", (5, 6), v16.astype(">u2").tobytes()), _expected_16(v16)),
        "L": (Image.fromarray(gray, "L"), gray3),
        "1": (Image.fromarray(bits), np.repeat(np.where(bits, 255, 0).astype(np.uint8)[..., None], 3, axis=2)),
        "LA": (Image.fromarray(np.stack([gray, alpha], -1), "LA"), _over_white(gray3, alpha)),
        "RGBA": (Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), _over_white(rgb, alpha)),
        "P": (p, palette[index]),
        "P+transparency": (p_clear, clear),
        "CMYK": (Image.fromarray(np.dstack([cmy, np.zeros((6, 5), np.uint8)]), "CMYK"), 255 - cmy),  # K = 0
        "RGB": (Image.fromarray(rgb, "RGB"), rgb),
    }


@pytest.mark.parametrize("mode", list(_cases(1)))
def test_each_mode_is_read_as_its_values_mean(mode):
    (first, want_first), (second, want_second) = _cases(1)[mode], _cases(2)[mode]
    got_first, got_second = np.asarray(decode(first)), np.asarray(decode(second))
    assert got_first.shape == (6, 5, 3) and got_first.dtype == np.uint8
    np.testing.assert_allclose(got_first, want_first, atol=1)  # Pillow's compositing rounds its own way
    np.testing.assert_allclose(got_second, want_second, atol=1)
    assert not np.array_equal(got_first, got_second)  # other contents, other pixels
    ex1, ex2 = Example("q", "a", first), Example("q", "a", second)
    assert ex1.fingerprint() != ex2.fingerprint()


@pytest.mark.parametrize(("mode", "fmt"), [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16", "PPM"), ("LA", "PNG"),
                                           ("RGBA", "PNG"), ("P+transparency", "PNG"), ("1", "PNG")])  # fmt: skip
def test_encoded_files_of_each_mode_are_read_alike(mode, fmt, tmp_path):
    """The same through files, as your own data arrives (a 16-bit PGM opens as mode "I")."""
    images = []
    for seed in (1, 2):
        image, want = _cases(seed)[mode]
        path = tmp_path / f"{seed}.{fmt.lower()}"
        image.save(path, format=fmt)
        got = np.asarray(LazyImage(path).open())
        np.testing.assert_allclose(got, want, atol=1)
        images.append(got)
    assert not np.array_equal(*images)


def test_sixteen_bit_png_is_not_white():
    """The fault as found: a 16-bit grayscale PNG of mid-gray read as white by ``convert("RGB")``."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(buffer, format="PNG")
    assert np.asarray(LazyImage(buffer.getvalue()).open())[0, 0].tolist() == [128, 128, 128]


def test_float_and_in_memory_int_images_are_refused_by_name(tmp_path):
    floats = Image.fromarray(RNG.random((4, 4)).astype(np.float32))
    with pytest.raises(ImageModeError, match=r"images\[0\]: pixel mode 'F' \(32-bit float\) has no fixed white"):
        Example("q", "a", floats)
    ints = Image.fromarray(np.arange(16, dtype=np.int32).reshape(4, 4))
    with pytest.raises(ImageModeError, match="pixel mode 'I' .32-bit integer."):
        to_rgb(ints)
    for label, seed in (("x", 1), ("y", 2), ("x", 3), ("y", 4)):  # a 32-bit int TIFF: named when the task is built
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4), seed, np.int32)).save(folder / f"{seed}.tif")
    with pytest.raises(ValueError, match=r"\d\.tif: pixel mode 'I'"):
        from_folder(tmp_path / "data")


def test_fingerprints_of_images_read_otherwise_than_before_are_new():
    """Vectors cached under the old reading (alpha dropped, 16-bit clipped) must never be returned for them."""
    import hashlib

    buffer = io.BytesIO()
    Image.fromarray(_gray16(1)).save(buffer, format="PNG")
    data = buffer.getvalue()
    assert LazyImage(data).digest() != hashlib.sha256(data).hexdigest()
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buffer, format="PNG")
    plain = buffer.getvalue()
    assert LazyImage(plain).digest() == hashlib.sha256(plain).hexdigest()  # RGB: the cache stays valid


def test_side_by_side_composites_each_image(tmp_path: Path):
    from savs.examples import side_by_side

    image, want = _cases(1)["RGBA"]
    joined = np.asarray(side_by_side([image, image], margin=0))
    np.testing.assert_allclose(joined[:, :5], want, atol=1)


def test_sixteen_bit_files_give_the_vectors_of_their_eight_bit_reading(tiny_adapter, tmp_path):
    """End to end on a tiny model: a 16-bit PNG gives the vectors of the same picture at 8 bits (v = 257 * g), and
    two different 16-bit pictures give different vectors (the plain conversion gave both those of a white image)."""
    from savs.extract import extract_heads

    adapter = tiny_adapter("llava")
    paths = {}
    for seed in (1, 2):
        gray = np.random.default_rng(seed).integers(0, 256, (24, 24)).astype(np.uint8)
        Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / f"{seed}-16.png")
        Image.fromarray(gray).save(tmp_path / f"{seed}-8.png")
        paths[seed] = (tmp_path / f"{seed}-16.png", tmp_path / f"{seed}-8.png")
    examples = [Example("What is it?", "x", p, uid=str(p)) for pair in paths.values() for p in pair]
    X = extract_heads(adapter, examples, progress=False)  # (4, L, H, d)
    np.testing.assert_allclose(X[0], X[1], atol=1e-6)
    np.testing.assert_allclose(X[2], X[3], atol=1e-6)
    assert not np.allclose(X[0], X[2], atol=1e-4)


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "P+transparency"])
def test_hub_images_decoded_by_the_benchmark_loaders_are_read_alike(mode):
    """The paper benchmarks' decoded hub images went through a plain ``convert("RGB")`` too."""
    from savs.data.benchmarks._common import rgb

    image, want = _cases(3)[mode]
    np.testing.assert_allclose(np.asarray(rgb(image)), want, atol=1)
