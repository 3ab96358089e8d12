"""The one example type every loader returns and every model adapter consumes, and the task that holds them."""

from __future__ import annotations

import hashlib
import io
import os
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ImageSource = bytes | str | os.PathLike | Callable[[], "bytes | str | os.PathLike"]


class ImageModeError(ValueError):
    """An image whose pixel mode has no one right 8-bit RGB reading (float, or 32-bit int not from a 16-bit file)."""


SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
SIXTEEN_BIT_FORMATS = ("PNG", "PPM")  # formats whose 16-bit grayscale Pillow opens as mode "I" (PGM does)
TRANSPARENT = ("LA", "La", "PA", "RGBA", "RGBa")
BACKGROUND = (255, 255, 255)  # where transparency is composited onto: white, as transformers' convert_to_rgb does


def _is_sixteen_bit(image: Image.Image) -> bool:
    return image.mode in SIXTEEN_BIT or (image.mode == "I" and image.format in SIXTEEN_BIT_FORMATS)


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in TRANSPARENT or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def mode_problem(image: Image.Image) -> str | None:
    """Why ``image``'s mode cannot be read as 8-bit RGB (None: it can). Float pixels, and 32-bit int pixels that do
    not come from a 16-bit file, have no fixed white level: any scaling would be a guess."""
    if image.mode == "F" or (image.mode == "I" and not _is_sixteen_bit(image)):
        bits = "32-bit float" if image.mode == "F" else "32-bit integer"
        return (
            f"pixel mode {image.mode!r} ({bits}) has no fixed white level, so no 8-bit RGB reading is right; scale it "
            "to 8 bits yourself (e.g. Image.fromarray(np.uint8(255 * a / a.max())).convert('RGB'))"
        )
    if image.mode not in Image.MODES:
        return f"pixel mode {image.mode!r} is not one Pillow converts to RGB"
    return None


def to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """``image`` as 8-bit RGB, read as its mode means it: 16-bit grayscale scaled by 255/65535 (a plain
    ``convert("RGB")`` clips it to white), transparency composited onto white (``BACKGROUND``), the rest (1, L, P,
    CMYK, YCbCr, LAB, HSV, RGBX) by Pillow's conversion. An ``ImageModeError`` naming ``name`` for float and 32-bit
    int pixels (``mode_problem``)."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    problem = mode_problem(image)
    if problem:
        raise ImageModeError(f"{name}: {problem}")
    if _is_sixteen_bit(image):
        values = np.asarray(image).astype(np.int64)  # (H, W) 0..65535
        if values.min() < 0 or values.max() > 65535:
            raise ImageModeError(f"{name}: 16-bit image with values outside 0..65535 ({values.min()}..{values.max()})")
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")
    if _has_transparency(image):
        rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", image.size, (*BACKGROUND, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def _reads_differently(image: Image.Image) -> bool:
    """Whether ``to_rgb`` reads ``image`` otherwise than the plain ``convert("RGB")`` earlier savs used: fingerprints
    of such images are tagged, so vectors cached from the old reading are never returned for them."""
    return _is_sixteen_bit(image) or _has_transparency(image)


class LazyImage:
    """An image read and decoded only when a model needs its pixels.

    Paper-scale test sets (ImageNet's validation split, VizWiz's phone photos) do not fit in memory decoded, so
    loaders hand these out instead of PIL images. ``source`` is the encoded bytes, a file path, or a zero-argument
    callable returning either (e.g. a row of a memory-mapped ``datasets`` table). Its identity for caching is a
    digest of the encoded bytes, computed once.
    """

    __slots__ = ("_source", "_digest")

    def __init__(self, source: ImageSource) -> None:
        if isinstance(source, str | os.PathLike) and not Path(source).is_file():
            raise FileNotFoundError(f"image file {source} does not exist")
        if not isinstance(source, bytes | str | os.PathLike) and not callable(source):
            raise TypeError(f"a LazyImage reads bytes, a path or a callable; got {type(source).__name__}")
        self._source = source
        self._digest: str | None = None

    def read(self) -> bytes:
        """The encoded image bytes."""
        data = self._source() if callable(self._source) else self._source
        return data if isinstance(data, bytes) else Path(data).read_bytes()

    def open(self) -> Image.Image:
        """The decoded image, 8-bit RGB (``to_rgb``); an unreadable image raises a ValueError naming its source, a
        mode with no RGB reading an ``ImageModeError``."""
        try:
            with Image.open(io.BytesIO(self.read())) as im:
                im.load()
                return to_rgb(im, repr(self))
        except ImageModeError:
            raise
        except (OSError, SyntaxError, ValueError) as e:
            raise ValueError(f"cannot decode image {self!r}: {e}") from e

    def digest(self) -> str:
        """sha256 of the encoded bytes, tagged where ``to_rgb`` reads the image otherwise than earlier savs did
        (memoized)."""
        if self._digest is None:
            data = self.read()
            digest = hashlib.sha256(data).hexdigest()
            try:
                with Image.open(io.BytesIO(data)) as im:  # the header only: mode and transparency
                    if _reads_differently(im):
                        digest = hashlib.sha256(f"{digest}\x00to_rgb-2".encode()).hexdigest()
            except (OSError, SyntaxError, ValueError):
                pass  # undecodable: open() names it when a model needs the pixels
            self._digest = digest
        return self._digest

    def __repr__(self) -> str:
        where = self._source if isinstance(self._source, str | os.PathLike) else type(self._source).__name__
        return f"LazyImage({where})"


Fill = tuple[int, int, int]


class BlankImage:
    """A uniform RGB ``fill`` image the size of ``source``, made only when a model needs its pixels.

    The blind control's copy of an image: blanked eagerly, a paper-scale test set would hold gigabytes of identical
    pixels. The size is read once, from the source's header (nothing is decoded), and then the source is let go.
    Its fingerprint is that of the eager ``Image.new("RGB", size, fill)``, so both share cache entries.
    """

    __slots__ = ("_source", "_size", "fill")

    def __init__(self, source: ImageLike, fill: Fill = (127, 127, 127)) -> None:
        lazy = isinstance(source, LazyImage)
        self._source: LazyImage | None = source if lazy else None
        self._size: tuple[int, int] | None = None if lazy else source.size
        self.fill = fill

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the source, read from its header on first use."""
        if self._size is None:
            self._size, self._source = _header_size(self._source), None
        return self._size

    def open(self) -> Image.Image:
        """The blank image, made now (nothing is kept)."""
        return Image.new("RGB", self.size, self.fill)

    def __repr__(self) -> str:
        return f"BlankImage({self.size[0]}x{self.size[1]}, fill={self.fill})"


def _header_size(image: LazyImage) -> tuple[int, int]:
    """A lazy image's (width, height) from its header alone; an unreadable one raises a ValueError naming it."""
    try:
        with Image.open(io.BytesIO(image.read())) as im:
            return im.size
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read the size of image {image!r}: {e}") from e


ImageLike = Image.Image | LazyImage | BlankImage


def decode(image: ImageLike) -> Image.Image:
    """The image as 8-bit RGB (``to_rgb``): a LazyImage read and decoded now, a BlankImage made now."""
    return image.open() if isinstance(image, LazyImage | BlankImage) else to_rgb(image)


def side_by_side(images: Sequence[Image.Image], margin: int = 10) -> Image.Image:
    """``images`` left to right on black, ``margin`` pixels apart, each centred vertically: how BLINK's evaluation
    shows several images to a model that takes one."""
    width = sum(im.width for im in images) + margin * (len(images) - 1)
    canvas = Image.new("RGB", (width, max(im.height for im in images)))
    x = 0
    for im in images:
        canvas.paste(to_rgb(im), (x, (canvas.height - im.height) // 2))
        x += im.width + margin
    return canvas


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def joined_image(images: Sequence[ImageLike], margin: int = 10) -> LazyImage:
    """``side_by_side`` of ``images`` as a lazy PNG: made when a model needs the pixels, nothing decoded before."""
    parts = tuple(images)
    return LazyImage(lambda: _png(side_by_side([decode(im) for im in parts], margin)))


def _as_image(value: object, where: str) -> ImageLike:
    """A PIL, lazy or blank image as is; a file path as a LazyImage; anything else a TypeError saying what to pass."""
    if isinstance(value, Image.Image) and (problem := mode_problem(value)):
        raise ImageModeError(f"{where}: {problem}")
    if isinstance(value, Image.Image | LazyImage | BlankImage):
        return value
    if isinstance(value, str | os.PathLike):
        return LazyImage(value)
    hint = " (PIL.Image.fromarray(array) makes one from an array)" if hasattr(value, "__array__") else ""
    raise TypeError(f"{where} is a {type(value).__name__}; expected a PIL image, a LazyImage or a file path{hint}")


def _image_bytes(h: hashlib._Hash, image: ImageLike) -> None:
    """Feed one image into a fingerprint: tagged, so pixels, encoded bytes and text can never run together."""
    if isinstance(image, LazyImage):
        h.update(b"\x00encoded\x00" + image.digest().encode())
    elif isinstance(image, BlankImage):
        _blank_pixels(h, image)
    else:
        pixels = image.tobytes()
        h.update(f"\x00pixels\x00{image.mode}\x00{image.size[0]}x{image.size[1]}\x00{len(pixels)}\x00".encode())
        h.update(pixels)
        if _reads_differently(image):
            h.update(b"\x00to_rgb-2\x00")
        if image.mode in ("P", "PA"):  # its pixels are palette indices: the colours are the palette's
            palette = bytes(image.getpalette() or ())
            h.update(f"\x00palette\x00{len(palette)}\x00{image.info.get('transparency')!r}\x00".encode() + palette)


def _blank_pixels(h: hashlib._Hash, image: BlankImage) -> None:
    """Feed a blank image as its eager PIL copy's pixels would be fed, a slice of rows at a time (never all held)."""
    (width, height), row = image.size, bytes(image.fill) * image.size[0]
    h.update(f"\x00pixels\x00RGB\x00{width}x{height}\x00{len(row) * height}\x00".encode())
    rows = max(1, (1 << 20) // len(row))  # about 1 MB at a time
    for start in range(0, height, rows):
        h.update(row * min(rows, height - start))


@dataclass(frozen=True, eq=False)
class Example:
    """One (image(s), prompt) -> label item.

    ``text`` is the user turn only (no chat template: the adapter adds it); ``images`` are PIL images or
    ``LazyImage``s in prompt order (a single image or a file path is accepted and wrapped; empty for text-only
    tasks); ``label`` is the gold class name. ``uid`` names the example for humans (``"fashion_mnist/test/17"``);
    caching never relies on it. Two examples are equal when their content (``fingerprint``), label and uid are.
    """

    text: str
    label: str
    images: tuple[ImageLike, ...] = ()
    uid: str = ""
    meta: dict = field(default_factory=dict)
    _fingerprint: list[str] = field(default_factory=list, init=False, repr=False)  # memo: [] until computed

    def __post_init__(self) -> None:
        for name in ("text", "label", "uid"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"Example.{name} must be a str; got {type(value).__name__} {value!r}")
        images = self.images
        if images is None:
            images = ()
        elif isinstance(images, Image.Image | LazyImage | BlankImage | str | os.PathLike):
            images = (images,)  # one image, not wrapped in a tuple
        elif not isinstance(images, Iterable):
            raise TypeError(f"Example.images must be a sequence of images; got {type(images).__name__}")
        object.__setattr__(self, "images", tuple(_as_image(im, f"images[{i}]") for i, im in enumerate(images)))

    def pil_images(self) -> tuple[Image.Image, ...]:
        """The images decoded, 8-bit RGB (lazy ones are read now; nothing is kept)."""
        return tuple(decode(im) for im in self.images)

    def fingerprint(self) -> str:
        """Content hash of prompt and images (not of label or uid): the activation-cache key part; memoized."""
        if not self._fingerprint:
            text = self.text.encode()
            h = hashlib.sha256(f"text\x00{len(text)}\x00".encode() + text)
            for im in self.images:
                _image_bytes(h, im)
            self._fingerprint.append(h.hexdigest())
        return self._fingerprint[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Example):
            return NotImplemented
        return (self.label, self.uid, self.fingerprint()) == (other.label, other.uid, other.fingerprint())

    def __hash__(self) -> int:
        return hash((self.label, self.uid, self.fingerprint()))


def _check_count(value: object, name: str, minimum: int) -> None:
    """An int argument (not a bool) of at least ``minimum``, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")


@dataclass
class Task:
    """A labelled task: a training pool to draw few-shot sets from and a fixed test set.

    ``labels`` is the label set in a fixed order; every example's label must be in it. ``pool_is_test``: the
    few-shot pool is the evaluated split itself (BLINK as the paper's authors ran it: few-shot items from its
    validation split, the rest of it as the test set), so each seed's test set is ``test`` minus that seed's
    few-shot examples (``test_subset(..., exclude=few_shot)``).
    """

    name: str
    labels: tuple[str, ...]
    train: list[Example]
    test: list[Example]
    description: str = ""
    pool_is_test: bool = False

    def __post_init__(self) -> None:
        if twice := sorted({lab for lab in self.labels if self.labels.count(lab) > 1}):
            raise ValueError(f"task {self.name!r}: labels {twice} appear more than once in {list(self.labels)}")
        known = set(self.labels)
        for split, items in (("train", self.train), ("test", self.test)):
            bad = {e.label for e in items} - known
            if bad:
                raise ValueError(f"task {self.name!r}: {split} labels {sorted(bad)} are not in its label set")

    def few_shot(self, k: int, seed: int = 0) -> list[Example]:
        """``k`` training examples per class, drawn with ``seed`` (the same seed gives the same set).

        Where the pool is the test split (``pool_is_test``) a class with ``k`` or fewer examples gives all but one
        (none if it has one or none), so every class keeps a test example; a warning names those classes.
        """
        _check_count(k, "k (examples per class)", 1)
        if not self.pool_is_test:
            return sample_per_class(self.train, k, seed, self.labels)
        counts = {lab: sum(e.label == lab for e in self.train) for lab in self.labels}
        short = {lab: max(n - 1, 0) for lab, n in counts.items() if n <= k}
        if short:
            warnings.warn(
                f"task {self.name!r}: {k} per class asked, but the few-shot pool is the test split and these classes "
                f"have only that many or fewer; taking all but one of each: {short}",
                stacklevel=2,
            )
        return sample_per_class(self.train, k, seed, self.labels, per_class={**dict.fromkeys(counts, k), **short})

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
        """Metrics of ``predictions`` on ``examples``, in %. Plain accuracy; grouped benchmarks override."""
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        if not examples:
            raise ValueError("nothing to evaluate: no examples")
        hits = sum(e.label == p for e, p in zip(examples, predictions, strict=True))
        return {"accuracy": 100.0 * hits / len(examples)}

    def test_subset(self, n: int | None = None, seed: int = 0, exclude: Iterable[Example] = ()) -> list[Example]:
        """The first ``n`` test examples of a seeded shuffle (all of them when ``n`` is None), leaving out
        ``exclude`` (a seed's few-shot set, where the pool is the test split)."""
        if n is not None:
            _check_count(n, "n (test examples)", 0)
        items = _without(self.test, exclude)
        random.Random(seed).shuffle(items)
        return items if n is None else items[:n]


def _without(items: Sequence[Example], exclude: Iterable[Example]) -> list[Example]:
    """``items`` minus those equal to one of ``exclude``, in order."""
    drop = set(exclude)
    return [e for e in items if e not in drop] if drop else list(items)


def sample_per_class(
    pool: Sequence[Example],
    k: int,
    seed: int,
    labels: Sequence[str] | None = None,
    per_class: dict[str, int] | None = None,
) -> list[Example]:
    """Draw ``k`` examples of every label (``per_class[label]`` where given), in label order, seeded; a clear error
    if one has fewer."""
    labels = list(labels) if labels is not None else sorted({e.label for e in pool})
    by_label: dict[str, list[Example]] = {lab: [] for lab in labels}
    for e in pool:
        if e.label in by_label:
            by_label[e.label].append(e)
    rng = random.Random(seed)
    out: list[Example] = []
    for lab in labels:
        items, want = by_label[lab], (per_class or {}).get(lab, k)
        if len(items) < want:
            raise ValueError(f"label {lab!r} has {len(items)} examples in the pool; {want} per class were asked")
        out.extend(rng.sample(items, want))
    return out
