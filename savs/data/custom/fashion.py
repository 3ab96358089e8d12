"""Notebook 07's stand-in for a user's own photos: five coarse product categories from Fashion-MNIST, in folders."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

FASHION_PRODUCT_GROUPS: dict[str, tuple[str, ...]] = {
    "bags": ("Bag",),
    "dresses": ("Dress",),
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
    "tops": ("T-shirt/top", "Pullover", "Shirt", "Coat"),
    "trousers": ("Trouser",),
}


def write_fashion_products(root: str | Path, per_class: int = 50, seed: int = 0, size: int = 112) -> Path:
    """Write ``root/<category>/t10k-<index>.jpg``: ``per_class`` product photos of each of five coarse categories
    (``FASHION_PRODUCT_GROUPS``), drawn with ``seed`` from Fashion-MNIST's t10k split and upscaled to ``size`` px.

    The example data of notebook 07: no image set beyond the project's own is available offline, so this is a
    different task (5 coarse product categories instead of 10 garment types) on Fashion-MNIST's Zalando product
    photos, laid out as a user's folder of JPEGs. ``root`` must not exist or be empty.
    """
    import numpy as np

    from savs.data.offline import FASHION_MNIST_LABELS, _fashion_mnist_file, _read_idx

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; write the example folders somewhere new")
    labels = _read_idx(_fashion_mnist_file("t10k-labels-idx1-ubyte.gz"))
    images = _read_idx(_fashion_mnist_file("t10k-images-idx3-ubyte.gz"))
    rng = np.random.default_rng(seed)
    for group, members in FASHION_PRODUCT_GROUPS.items():
        codes = [FASHION_MNIST_LABELS.index(m) for m in members]
        pool = np.flatnonzero(np.isin(labels, codes))
        (root / group).mkdir(parents=True)
        for i in sorted(rng.choice(pool, size=per_class, replace=False).tolist()):
            photo = Image.fromarray(images[i]).resize((size, size), Image.Resampling.LANCZOS).convert("RGB")
            photo.save(root / group / f"t10k-{i:05d}.jpg", quality=95)
    return root
