"""savs-mini: a LLaVA-style generative LMM built from real parts that ship on PyPI.

Frozen EfficientNet-Lite0 (ImageNet-1k) -> trainable 2-layer GELU MLP projector -> ``GRID x GRID`` image tokens
(``savs.mini.vision``) spliced into the prompt of the frozen SmolLM2-135M-Instruct at its ``<image>`` placeholders.
Only the projector is trained (stage-1 alignment, ``savs.mini.train``); both its trained and its untrained
(norm-matched random) weights ship in ``savs/mini/weights/savs-mini-projector.safetensors``, one key prefix per variant.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import Cache, LlamaForCausalLM, PreTrainedTokenizerBase
from transformers.modeling_outputs import CausalLMOutputWithPast

from savs.mini.convert import load_lm
from savs.mini.vision import FEATURE_DIM, VisionEncoder

IMAGE_TOKEN = "<image>"
PROJECTOR_VARIANTS = ("aligned", "untrained")
WEIGHTS = Path(__file__).resolve().parent / "weights" / "savs-mini-projector.safetensors"


class Projector(nn.Module):
    """LLaVA-1.5's ``mlp2x_gelu``: vision features -> the LM's embedding space."""

    def __init__(self, in_dim: int = FEATURE_DIM, out_dim: int = 576) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def projector_digest(projector: Projector) -> str:
    """Hash of the projector's weights: tells cached activations of different projectors apart."""
    h = hashlib.sha256()
    for name, tensor in sorted(projector.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_projector(variant: str, path: str | Path = WEIGHTS) -> Projector:
    """One projector variant ("aligned" or "untrained") from the weights file."""
    if variant not in PROJECTOR_VARIANTS:
        raise ValueError(f"unknown projector variant {variant!r}; known: {', '.join(PROJECTOR_VARIANTS)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"projector weights {path} missing: regenerate them with `make savs-mini`")
    tensors = load_file(str(path))
    state = {k.removeprefix(f"{variant}."): v for k, v in tensors.items() if k.startswith(f"{variant}.")}
    projector = Projector(state["fc1.weight"].shape[1], state["fc2.weight"].shape[0])
    projector.load_state_dict(state)
    return projector


def add_image_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """Register ``<image>`` as a special token (id past the LM's vocabulary: it is never embedded) -> its id."""
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


class MiniLMM(nn.Module):
    """Vision encoder + projector + causal LM; every ``image_token_id`` in the prompt becomes one image token."""

    def __init__(self, vision: VisionEncoder, projector: Projector, lm: LlamaForCausalLM, image_token_id: int) -> None:
        super().__init__()
        self.vision, self.projector, self.lm = vision, projector, lm
        self.image_token_id = image_token_id
        self.lm.requires_grad_(False)

    @property
    def config(self):
        return self.lm.config

    @property
    def dtype(self) -> torch.dtype:
        return self.lm.dtype

    def get_input_embeddings(self) -> nn.Embedding:
        return self.lm.get_input_embeddings()

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` images -> ``(N, n_tokens, 1280)`` frozen vision features, in the vision encoder's dtype."""
        return self.vision(pixel_values)

    def embed(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with the projected image tokens spliced in at the ``<image>`` positions."""
        is_image = input_ids == self.image_token_id  # (B, T)
        embeds = self.get_input_embeddings()(input_ids.masked_fill(is_image, 0))  # (B, T, D)
        if not is_image.any():
            return embeds
        if image_features is None:
            if pixel_values is None:
                raise ValueError("the prompt holds <image> tokens but neither pixel_values nor image_features")
            image_features = self.image_features(pixel_values)
        tokens = self.projector(image_features.to(embeds.dtype))  # (N, n_tokens, D)
        if tokens.shape[0] * tokens.shape[1] != int(is_image.sum()):
            raise ValueError(
                f"{int(is_image.sum())} <image> tokens in the prompt but {tokens.shape[0]} images of "
                f"{tokens.shape[1]} tokens each"
            )
        return embeds.masked_scatter(is_image[..., None], tokens.reshape(-1, embeds.shape[-1]))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool = False,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """One LM pass over ``input_ids`` (the part after ``cache``, a KV cache of earlier tokens, if any).

        ``attention_mask`` covers cached and new tokens; positions count only unmasked tokens, so left
        or right padding and a cached shared prefix all give every real token its unpadded position.
        """
        embeds = self.embed(input_ids, pixel_values, image_features)  # (B, T, D)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]  # (B, T)
        return self.lm(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=positions,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )


def build(
    projector: str | Projector = "aligned", cache_dir: str | Path | None = None
) -> tuple[MiniLMM, PreTrainedTokenizerBase]:
    """savs-mini with a projector variant (or module) and its tokenizer (``<image>`` added), fp32 on the CPU."""
    lm, tokenizer = load_lm(cache_dir)
    image_token_id = add_image_token(tokenizer)
    proj = load_projector(projector) if isinstance(projector, str) else projector
    return MiniLMM(VisionEncoder(), proj, lm, image_token_id).eval(), tokenizer
