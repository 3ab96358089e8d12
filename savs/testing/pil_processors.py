"""Pil stand-ins for image processors that transformers ships only as torchvision classes (no torchvision here).

Each reproduces what its model's processor and forward read, for the random-weight models' one-tile images, not every
option of the original (declared in its docstring). `register_pil_image_processors` makes saved folders load
them through `AutoImageProcessor` / `AutoProcessor` (their names, prefixed `Savs`, must differ from the
torchvision classes' for that lookup).
"""

from __future__ import annotations

import torch
from transformers import AutoImageProcessor, BatchFeature, Lfm2VlConfig, Llama4Config
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs


class SavsLlama4ImageProcessorPil(PilBackend):
    """Llama 4's image processing for one tile: the image resized to the tile size (``size``), rescaled and
    normalised in float32 (the original: aspect kept and padded, bfloat16, up to ``max_patches`` tiles plus a global
    one), with the ``aspect_ratios`` (1 x 1 tiles) its processor reads."""

    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"height": 336, "width": 336}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    model_input_names = ["pixel_values"]

    def preprocess(self, images, **kwargs) -> BatchFeature:
        out = super().preprocess(images, **kwargs)
        n = len(out["pixel_values"])
        out["aspect_ratios"] = torch.ones(n, 2, dtype=torch.long)  # (n_images, [tiles high, tiles wide])
        return out


class Lfm2VlImageProcessorKwargs(ImagesKwargs, total=False):
    """The options LFM2-VL's processor passes its image processor (most unused by the one-tile stand-in)."""

    downsample_factor: int
    do_image_splitting: bool
    min_tiles: int
    max_tiles: int
    use_thumbnail: bool
    min_image_tokens: int
    max_image_tokens: int
    encoder_patch_size: int
    tile_size: int
    max_pixels_tolerance: float
    do_pad: bool
    return_row_col_info: bool


class SavsLfm2VlImageProcessorPil(PilBackend):
    """LFM2-VL's image processing for one tile: the image resized to ``size`` (the original: smart resize within
    token bounds, tiles plus a thumbnail for large images), rescaled, normalised, cut into ``encoder_patch_size``
    patches (rows of ``patch * patch * 3`` values, channels last), with the attention mask, spatial shapes and the
    grid its processor reads (``image_rows`` / ``image_cols`` 1, ``image_sizes``)."""

    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"height": 512, "width": 512}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    encoder_patch_size = 16
    downsample_factor = 2
    tile_size = 512
    use_thumbnail = False
    model_input_names = ["pixel_values", "pixel_attention_mask", "spatial_shapes"]
    valid_kwargs = Lfm2VlImageProcessorKwargs

    def __init__(self, encoder_patch_size: int = 16, downsample_factor: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder_patch_size, self.downsample_factor = encoder_patch_size, downsample_factor
        self.tile_size = self.size["height"]

    def preprocess(self, images, return_row_col_info: bool = False, **kwargs) -> BatchFeature:
        for key in Lfm2VlImageProcessorKwargs.__annotations__:
            kwargs.pop(key, None)
        kwargs.pop("use_image_special_tokens", None)
        out = super().preprocess(images, **{**kwargs, "return_tensors": "pt"})
        pixels = out["pixel_values"]  # (n, 3, H, W)
        n, c, h, w = pixels.shape
        p = self.encoder_patch_size
        patches = pixels.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(n, -1, p * p * c)
        data = {
            "pixel_values": patches,  # (n, patches, p * p * 3)
            "pixel_attention_mask": torch.ones(n, patches.shape[1], dtype=torch.int32),
            "spatial_shapes": torch.tensor([[h // p, w // p]] * n),
        }
        if return_row_col_info:
            data.update({"image_rows": [1] * n, "image_cols": [1] * n, "image_sizes": [[h, w]] * n})
        return BatchFeature(data=data)


PIL_IMAGE_PROCESSORS = {"llama4": SavsLlama4ImageProcessorPil, "lfm2_vl": SavsLfm2VlImageProcessorPil}


def register_pil_image_processors() -> None:
    """Let `AutoImageProcessor` find the stand-ins by the names saved folders record (as the types' Pil backend;
    the torchvision one, which cannot load here, is taken out)."""
    for config, cls in ((Llama4Config, SavsLlama4ImageProcessorPil), (Lfm2VlConfig, SavsLfm2VlImageProcessorPil)):
        AutoImageProcessor.register(config, image_processor_classes={"pil": cls, "torchvision": None}, exist_ok=True)
