"""What every model family shares: loading, chat prompts, batching, and where the attention heads are.

Models loaded from transformers use ``savs.models.generic.GenericAdapter``, which finds the heads on the model;
this base keeps an attribute path to the decoder layers (``layers_path``) for adapters of models built here
(savs-mini). Geometry (layers, heads, head size) always comes from the model itself.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

import torch
from PIL import Image
from torch import nn
from transformers import AutoModelForImageTextToText, AutoProcessor, BatchFeature, Cache

from savs.cache import default_cache_dir
from savs.data.prompts import image_markers, strip_image_markers
from savs.examples import Example, joined_image
from savs.identity import ModelIdentity, digest, json_digest, model_source
from savs.kvcache import KV, empty_cache, expanded, kv_of, positions


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype given as one or by name ("bfloat16"); None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; e.g. 'float32', 'bfloat16', 'float16'")
    return value


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU; fp32 on a CPU, where bf16 matrix products are much slower."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def default_attention(device: torch.device) -> str:
    """FlashAttention-2 on a GPU where the ``flash_attn`` package is installed; PyTorch's SDPA otherwise."""
    has_flash = importlib.util.find_spec("flash_attn") is not None
    return "flash_attention_2" if device.type == "cuda" and has_flash else "sdpa"


class Capture(Protocol):
    """What a prefill may run under (``savs.capture.FeatureCapture``): hooks that keep token ``index[b]`` of each row
    (``index=None``: nothing) and may stop the pass early."""

    def run(self, forward: Callable[[], object], index: torch.Tensor | None) -> dict[str, torch.Tensor] | None: ...


@dataclass(frozen=True)
class Prefill:
    """What a prompt pass (``Adapter.prefill``) leaves for its callers."""

    cache: Cache | None  # the keys and values of every token so far; None: the pass ran without a cache
    logits: torch.Tensor | None  # (B, V) next-token logits at the last column; None: a capture stopped the pass early
    features: dict[str, torch.Tensor] | None  # what the capture kept (``FeatureCapture.run``); None: no capture

    @property
    def kv(self) -> KV:
        """The cache's keys and values per layer, to be ``expanded`` to the rows that continue them."""
        if self.cache is None:
            raise ValueError("this pass ran without a cache (use_cache=False): it left no keys and values")
        return kv_of(self.cache)


class Adapter:
    """One loaded model plus its processor, seen the way extraction needs it.

    Subclasses set ``family``, ``model_types`` (the ``config.model_type`` values they handle),
    ``auto_model`` and ``layers_path`` (attribute path from the model to its decoder layers).
    """

    family: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    auto_model: ClassVar[type] = AutoModelForImageTextToText
    layers_path: ClassVar[str] = "model.language_model.layers"
    # Whether a shared token prefix may be run once and its KV cache reused at all (False: never). Where it may, the
    # generic adapter still uses it only where a probe shows it changes nothing (``prefix_cache_ok``).
    supports_prefix_cache: ClassVar[bool] = True
    # Processor class per model type where ``AutoProcessor`` would pick one that cannot be built here.
    processor_classes: ClassVar[dict[str, type]] = {}
    # Whether a whole prompt is decoded by the model's own transformers ``generate`` (its generation config's extras,
    # e.g. Qwen2-VL's repetition penalty, and its own position rules: multimodal RoPE); False: by ``decode``'s loop.
    own_generate: ClassVar[bool] = True
    # Keep an authors' prompt's leading "<image>\n" markers as literal text (see ``user_turn``).
    literal_image_markers: ClassVar[bool] = False
    # The model was trained on one image per prompt: several are joined side by side first (``shown``). Per
    # instance: the registry sets it for single-image checkpoints of multi-image families (LLaVA-1.5).
    single_image: bool = False

    def __init__(self, model: nn.Module, processor, name: str, source: str | None = None) -> None:
        self.model = model.eval()
        self.processor = processor
        self.name = name
        self.source = source  # where the weights came from (see savs.identity); None: digest the parameters

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        attn_implementation: str | None = None,
        **kwargs,
    ) -> Adapter:
        """Load model and processor (hub id or local dir): on a GPU bf16, ``device_map="auto"`` and FlashAttention-2
        when installed; on a CPU fp32 and SDPA; eager attention where the architecture has neither."""
        device = torch.device(device) if device is not None else default_device()
        dtype = as_dtype(dtype) or default_dtype(device)
        chosen = attn_implementation
        attn_implementation = attn_implementation or default_attention(device)
        model_kwargs = {"dtype": dtype, "attn_implementation": attn_implementation, **kwargs}
        if device.type == "cuda":  # one named GPU (a rank of a multi-process run), or spread over all
            model_kwargs.setdefault("device_map", "auto" if device.index is None else {"": device})
        try:
            model = cls.auto_model.from_pretrained(name_or_path, **model_kwargs)
        except ValueError as err:  # an architecture without SDPA (or FlashAttention) runs eager unless told otherwise
            if chosen is not None or "does not support an attention implementation" not in str(err):
                raise
            model = cls.auto_model.from_pretrained(name_or_path, **{**model_kwargs, "attn_implementation": "eager"})
        if "device_map" not in model_kwargs:
            model = model.to(device)
        processor = cls.load_processor(name_or_path, model.config.model_type)
        source = model_source(str(name_or_path), kwargs.get("revision"), memo_dir=default_cache_dir())
        return cls(model, processor, name=str(name_or_path), source=source)

    @classmethod
    def load_processor(cls, name_or_path: str, model_type: str):
        """The family's processor (or tokenizer, for text-only models)."""
        return cls.processor_classes.get(model_type, AutoProcessor).from_pretrained(name_or_path)

    # ----- geometry -------------------------------------------------------------------------------
    @property
    def text_config(self):
        """The decoder's config (multimodal configs nest it)."""
        return self.model.config.get_text_config(decoder=True)

    @property
    def n_layers(self) -> int:
        return len(self.layers())

    @property
    def n_heads(self) -> int:
        return self.text_config.num_attention_heads

    @property
    def head_dim(self) -> int:
        cfg = self.text_config
        return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads

    def layers(self) -> nn.ModuleList:
        """The decoder layers, in order."""
        return operator.attrgetter(self.layers_path)(self.model)

    @property
    def head_layers(self) -> tuple[int, ...]:
        """The decoder layers that carry softmax-attention heads, by their real numbers (every layer here)."""
        return tuple(range(self.n_layers))

    def o_proj(self, layer: int) -> nn.Module:
        """The output projection of ``layer``'s attention: its input is the per-head outputs, concatenated."""
        return self.layers()[layer].self_attn.o_proj

    def final_norm(self) -> nn.Module:
        """The norm between the last decoder layer and the LM head (a sibling of the layer list)."""
        parent = self.layers_path.rpartition(".")[0]
        norm = getattr(operator.attrgetter(parent)(self.model), "norm", None)
        if not isinstance(norm, nn.Module):
            raise NotImplementedError(f"no final norm at {parent}.norm in {self.name}")
        return norm

    # ----- shortcuts extraction may take (the generic adapter decides them by evidence) -------------------------
    @property
    def prefix_cache_ok(self) -> bool:
        """Whether a token prefix shared by a batch may run once and its KV cache be reused."""
        return self.supports_prefix_cache

    @property
    def early_stop_ok(self) -> bool:
        """Whether a pass may stop once the deepest layer asked for has run."""
        return True

    @property
    def padding_ok(self) -> bool:
        """Whether prompts of different lengths may share a padded batch."""
        return True

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    # ----- prompts and batches --------------------------------------------------------------------
    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def system_turns(self) -> list[dict]:
        """Turns before the user's: none unless the family's model was trained (and run by the authors) with one."""
        return []

    def user_turn(self, example: Example) -> dict:
        """The user turn: the images first, then the text (the layout of the paper's prompts).

        An authors'-protocol prompt begins with one ``<image>\\n`` marker per image; the chat template places the
        images there, so the markers are dropped from the text, except where ``literal_image_markers`` says the
        authors ran the family with them left in as text.
        """
        text = example.text if self.literal_image_markers else strip_image_markers(example.text, len(example.images))
        images = [{"type": "image"} for _ in example.images]
        return {"role": "user", "content": [*images, {"type": "text", "text": text}]}

    def shown(self, example: Example) -> Example:
        """``example`` as this model takes it: for a ``single_image`` model, several images become one, side by side
        (BLINK's rule for such models; ``savs.examples.side_by_side``), and an authors' prompt's leading image markers
        become one; anything else as is."""
        n = len(example.images)
        if not self.single_image or n < 2:
            return example
        text = example.text
        if text.startswith(image_markers(n)):
            text = image_markers(1) + strip_image_markers(text, n)
        return replace(example, text=text, images=(joined_image(example.images),))

    def messages(self, example: Example) -> list[dict]:
        """The conversation that prompts ``example``: system turns (if any), then its user turn."""
        return [*self.system_turns(), self.user_turn(self.shown(example))]

    def render(self, example: Example) -> str:
        """The full prompt string: chat template plus generation prompt, image placeholders unexpanded."""
        return self.processor.apply_chat_template(self.messages(example), add_generation_prompt=True, tokenize=False)

    def encode(self, examples: Sequence[Example], padding_side: str = "left") -> BatchFeature:
        """Tokenize (and preprocess images of) a batch, padded on ``padding_side``, on the model's device."""
        return self._encode(examples, padding_side, add_special_tokens=False)

    def _encode(self, examples: Sequence[Example], padding_side: str, add_special_tokens: bool) -> BatchFeature:
        """``encode``, saying whether the tokenizer adds its own special tokens (a chat template holds them)."""
        texts = [self.render(e) for e in examples]
        examples = [self.shown(e) for e in examples]
        n_images = {len(e.images) for e in examples}
        kwargs = {"text": texts, "padding": True, "return_tensors": "pt", "add_special_tokens": add_special_tokens}
        if n_images != {0}:
            if 0 in n_images:
                raise ValueError("a batch mixes examples with and without images; split it by image count")
            kwargs["images"] = self.processor_images(examples)
        tok = self.tokenizer
        old_side, tok.padding_side = tok.padding_side, padding_side
        try:
            batch = self.processor(**kwargs)
        finally:
            tok.padding_side = old_side
        return batch.to(self.device)

    def processor_images(self, examples: Sequence[Example]) -> list:
        """The processor's ``images`` for a batch of examples that have images: one list per example."""
        return [list(e.pil_images()) for e in examples]

    def prefix_barrier_ids(self) -> set[int]:
        """Token ids that must not enter a cached shared prefix (image placeholders get features spliced in)."""
        token = getattr(self.processor, "image_token", None)
        token = getattr(token, "content", token)  # an AddedToken (BLIP-2) names its text
        return set() if token is None else {self.tokenizer.convert_tokens_to_ids(token)}

    def forward(self, batch: dict, cache: Cache | None = None, use_cache: bool = False):
        """One forward pass (extraction stops it early from a hook); ``cache`` holds the keys and values of earlier
        tokens (a cached prefix), and ``use_cache`` adds this pass's to it."""
        return self.model(**batch, cache=cache, use_cache=use_cache)

    def vision_encoder_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(n_images, D)`` float32: each image's vision-encoder features averaged over its tokens (and crops), as
        projected into the LM's embedding space (``get_image_features``: what the LM is given)."""
        image_processor = getattr(self.processor, "image_processor", None)
        if image_processor is None or not hasattr(self.model, "get_image_features"):
            raise NotImplementedError(
                f"vision_features: family {self.family!r} ({type(self.model).__name__}) has no vision encoder to probe"
            )
        inputs = image_processor([[im] for im in images], return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        per_image = self.model.get_image_features(**inputs).pooler_output  # one (tokens, D) block per image
        return torch.stack([feats.float().reshape(-1, feats.shape[-1]).mean(0) for feats in per_image])  # (N, D)

    # ----- running prompts: prefill, then decode -----------------------------------------------------------------
    def prefill(
        self,
        batch: Mapping[str, torch.Tensor],
        cache: Cache | None = None,
        *,
        use_cache: bool = True,
        capture: Capture | None = None,
        index: torch.Tensor | None = None,
    ) -> Prefill:
        """Run a prompt (or the rest of one, after the tokens in ``cache``) through the model, returning its cache, its
        last logits and the features captured on the way: every prompt pass of extraction, decoding, MTV's search and
        the shared prefixes of training goes through here.

        ``cache``: the keys and values of earlier tokens, extended in place; None: a fresh cache, or none at all with
        ``use_cache=False`` (a pass nobody continues, as plain extraction runs). ``capture``: the pass runs under it
        (``savs.capture``), keeping token ``index[b]`` of each row (None: nothing, but it still stops where the capture
        stops). ``batch`` goes to ``forward`` as given (``logits_to_keep`` included). Gradients flow unless the caller
        turns them off: LoRA back-propagates through its prefix.
        """
        if cache is None and use_cache:
            cache = empty_cache()
        outputs = []

        def run() -> None:
            outputs.append(self.forward(batch, cache=cache, use_cache=use_cache))

        if capture is None:
            run()
            features = None
        else:
            features = capture.run(run, index)
        logits = outputs[0].logits[:, -1] if outputs else None  # (B, V)
        return Prefill(cache if use_cache else None, logits, features)

    def shared_prefix_cache(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int) -> Cache:
        """The first ``n`` tokens every row of a batch shares (row 0's), prefilled once and given to every row (views):
        the cache a pass over ``kvcache.suffix(batch, n)`` continues."""
        prefix = {"input_ids": input_ids[:1, :n], "attention_mask": attention_mask[:1, :n], "logits_to_keep": 1}
        return expanded(self.prefill(prefix).kv, len(input_ids))

    @torch.inference_mode()
    def decode(
        self, batch: Mapping[str, torch.Tensor], cache: Cache | None = None, max_new_tokens: int = 16
    ) -> list[str]:
        """Greedy answers continuing a left-padded ``batch``, special tokens stripped: the one decoder of the zero-shot,
        ICL and MTV baselines.

        A whole prompt (``cache`` None) goes through the model's own ``generate`` where it has one (``own_generate``):
        one pass over the prompt, then one per token. A batch continuing the tokens of a prefilled ``cache`` (its
        attention mask covering them too; an empty cache: none) is decoded by argmax, positions counted from the mask
        (``kvcache.positions``); a row that has ended continues with padding, and decoding stops once every row has.
        """
        if cache is None and self.own_generate:
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
            new = out[:, batch["input_ids"].shape[1] :]  # (B, new)
        else:
            new = self._argmax_tokens(batch, empty_cache() if cache is None else cache, max_new_tokens)
        return [s.strip() for s in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def _argmax_tokens(self, batch: Mapping[str, torch.Tensor], cache: Cache, max_new_tokens: int) -> torch.Tensor:
        """``decode``'s loop: the argmax tokens ``(B, new)`` continuing ``batch`` after ``cache``'s tokens."""
        mask = batch["attention_mask"]  # (B, cached + T)
        rows = mask.shape[0]
        inputs = {**batch, "logits_to_keep": 1}
        eos = torch.tensor(self._eos_ids(), device=mask.device)
        pad = self.tokenizer.pad_token_id
        pad = int(eos[0]) if pad is None else pad
        done = torch.zeros(rows, dtype=torch.bool, device=mask.device)
        new: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            inputs.update(positions(self.model, mask, inputs["input_ids"].shape[1]))
            token = self.prefill(inputs, cache).logits.argmax(-1).masked_fill(done, pad)  # (B,)
            new.append(token)
            done |= torch.isin(token, eos)
            if done.all():
                break
            mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)  # (B, cached + T + 1)
            inputs = {"input_ids": token[:, None], "attention_mask": mask, "logits_to_keep": 1}
        return torch.stack(new, dim=1)  # (B, new)

    def _eos_ids(self) -> list[int]:
        """The token ids that end an answer: the generation config's, else the tokenizer's EOS."""
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos = self.tokenizer.eos_token_id if eos is None else eos
        return [eos] if isinstance(eos, int) else list(eos)

    def generate(self, examples: Sequence[Example], max_new_tokens: int = 16) -> list[str]:
        """Greedy answers to each example (the zero-shot baseline): its whole prompt, ``decode``d."""
        return self.decode(self.encode(examples, padding_side="left"), max_new_tokens=max_new_tokens)

    @functools.cached_property
    def identity(self) -> ModelIdentity:
        """What decides this model's vectors (``savs.identity``): the cache namespace, a saved SAV's check."""
        return self.current_identity()

    def current_identity(self) -> ModelIdentity:
        """``identity`` as of now, not memoised (what was probed on load may be changed before ``identity`` is read)."""
        template = getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", "")
        settings = self.processor.to_dict() if hasattr(self.processor, "image_processor") else {}
        return ModelIdentity(
            family=self.family,
            source=self.source or f"weights:{parameters_digest(self.model)}",
            dtype=str(self.model.dtype).removeprefix("torch."),
            attention=str(getattr(self.model.config, "_attn_implementation", None) or "default"),
            template=digest(str(template)),
            processor=json_digest(settings),
            extra=self.identity_extra() + ("+side-by-side" if self.single_image else ""),
        )

    def identity_extra(self) -> str:
        """Family-specific parts of the identity (none by default)."""
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, {self.n_layers} layers x {self.n_heads} heads x "
            f"{self.head_dim} dims, {self.model.dtype}, {self.device})"
        )


def parameters_digest(model: nn.Module) -> str:
    """Digest of a model's parameters and buffers (names, dtypes, shapes, values), for a model not loaded from disk."""
    h = hashlib.sha256()
    for name, tensor in sorted({**dict(model.named_parameters()), **dict(model.named_buffers())}.items()):
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
