"""Examples check what they are given, decode lazy images only on demand, and hash their content unambiguously."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from savs.examples import Example, LazyImage, Task, decode, joined_image, side_by_side


def png_bytes(seed: int = 0, size: tuple[int, int] = (9, 7)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_single_image_or_a_path_is_wrapped(tmp_path):
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    assert Example("q", "a", images=image).images == (image,)
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes())
    (lazy,) = Example("q", "a", images=str(path)).images
    assert isinstance(lazy, LazyImage) and lazy.open().size == (9, 7)
    assert Example("q", "a", images=None).images == ()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ((np.zeros((4, 4, 3), dtype=np.uint8),), r"images\[0\] is a ndarray.*PIL.Image.fromarray"),
        ((None,), r"images\[0\] is a NoneType"),
        (("/no/such/file.png",), "does not exist"),
        (3, "must be a sequence of images"),
    ],
)
def test_bad_images_are_refused_at_construction(images, message):
    with pytest.raises((TypeError, FileNotFoundError), match=message):
        Example("q", "a", images=images)


def test_text_and_label_must_be_strings():
    with pytest.raises(TypeError, match=r"Example.label must be a str; got int 3"):
        Example("q", 3)
    with pytest.raises(TypeError, match="Example.text"):
        Example(None, "a")


def test_lazy_images_are_decoded_only_when_asked(monkeypatch):
    calls = []

    def fetch() -> bytes:
        calls.append(1)
        return png_bytes(1)

    e = Example("q", "a", images=(LazyImage(fetch),))
    assert calls == []  # building an example reads nothing
    fp = e.fingerprint()
    assert len(calls) == 1 and e.fingerprint() == fp and len(calls) == 1  # the digest is read once, then memoized
    (im,) = e.pil_images()
    assert im.mode == "RGB" and np.array_equal(np.asarray(im), np.asarray(Image.open(io.BytesIO(png_bytes(1)))))
    assert decode(im) is im


def test_an_undecodable_lazy_image_names_itself():
    with pytest.raises(ValueError, match="cannot decode image LazyImage"):
        LazyImage(b"not an image").open()


def test_fingerprint_separates_text_from_pixels():
    # Without separators, the text "ab" + pixels "c..." could hash like "a" + pixels "bc...".
    pixels = Image.frombytes("L", (2, 1), b"cd")
    shifted = Image.frombytes("L", (2, 1), b"bc")
    a = Example("ab", "x", images=(pixels,))
    b = Example("a", "x", images=(shifted,))
    assert a.fingerprint() != b.fingerprint()
    assert Example("q", "x").fingerprint() != Example("q", "x", images=(Image.new("RGB", (1, 1)),)).fingerprint()
    lazy = LazyImage(png_bytes(2))
    assert Example("q", "x", images=(lazy,)).fingerprint() == Example("q", "y", images=(lazy,)).fingerprint()


def test_palette_images_with_other_palettes_have_other_fingerprints():
    """Two palette images with the same indices but other colours are other images (the cache must not mix them)."""
    red, blue = Image.new("P", (2, 2), 0), Image.new("P", (2, 2), 0)
    red.putpalette([255, 0, 0] * 256)
    blue.putpalette([0, 0, 255] * 256)
    assert red.tobytes() == blue.tobytes() and red.convert("RGB").tobytes() != blue.convert("RGB").tobytes()
    assert Example("q", "x", images=(red,)).fingerprint() != Example("q", "x", images=(blue,)).fingerprint()
    assert Example("q", "x", images=(red,)).fingerprint() == Example("q", "x", images=(red.copy(),)).fingerprint()


def test_examples_are_hashable_and_equal_by_content():
    image = Image.new("RGB", (3, 3), (9, 9, 9))
    a = Example("q", "x", images=(image,), uid="u")
    b = Example("q", "x", images=(image.copy(),), uid="u")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Example("q", "y", images=(image,), uid="u")


def _task(pool_is_test: bool, sizes: dict[str, int]) -> Task:
    items = [Example(f"q{lab}{i}", lab, uid=f"{lab}{i}") for lab, n in sizes.items() for i in range(n)]
    return Task("t", tuple(sizes), train=items, test=items, pool_is_test=pool_is_test)


def test_pool_is_test_keeps_each_seeds_few_shot_out_of_its_test_set():
    task = _task(True, {"(A)": 30, "(B)": 25})
    for seed in (0, 1):
        few = task.few_shot(20, seed)
        test = task.test_subset(None, seed=0, exclude=few)
        assert len(few) == 40 and len(test) == 15 and not set(few) & set(test)
    assert task.few_shot(20, 0) != task.few_shot(20, 1)


def test_pool_is_test_takes_all_but_one_of_a_small_class_and_says_so():
    task = _task(True, {"(A)": 30, "(B)": 12})
    with pytest.warns(UserWarning, match=r"\{'\(B\)': 11\}"):
        few = task.few_shot(20, 0)
    assert sum(e.label == "(B)" for e in few) == 11
    assert [e.label for e in task.test_subset(None, exclude=few)].count("(B)") == 1


@pytest.mark.parametrize("n", [-3, 1.5, True])
def test_test_subset_refuses_a_bad_size(n):
    with pytest.raises(ValueError, match="n \\(test examples\\) must be an int >= 0"):
        _task(False, {"a": 2, "b": 2}).test_subset(n)


def test_few_shot_refuses_a_bad_k():
    with pytest.raises(ValueError, match="k \\(examples per class\\)"):
        _task(False, {"a": 2, "b": 2}).few_shot(0)


def test_side_by_side_places_each_image_centred_with_a_black_margin():
    tall = Image.new("RGB", (3, 6), (255, 0, 0))
    short = Image.new("RGB", (2, 2), (0, 0, 255))
    joined = np.asarray(side_by_side([tall, short], margin=4))  # (H, W, 3)
    assert joined.shape == (6, 3 + 4 + 2, 3)
    assert (joined[:, :3] == [255, 0, 0]).all() and (joined[:, 3:7] == 0).all()  # image, then the margin
    assert (joined[2:4, 7:] == [0, 0, 255]).all() and (joined[:2, 7:] == 0).all() and (joined[4:, 7:] == 0).all()
    buf = io.BytesIO()
    short.save(buf, format="PNG")
    lazy = joined_image([tall, LazyImage(buf.getvalue())], margin=4)
    assert np.array_equal(np.asarray(decode(lazy)), joined)  # lossless, decoded only now
