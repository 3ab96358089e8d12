"""Where a loaded model's attention heads are, found by looking at its modules rather than by a per-family path.

A head's output at the last prompt token is defined where a causal decoder's softmax attention computes per-head
outputs, concatenates them and feeds them to one output projection (``o_proj``, ``out_proj``, ``dense``, ``wo``, ...):
the projection's input is the concatenation, head-major, ``(B, T, n_heads * head_dim)``. ``find_heads`` finds:

- the text decoder (``get_decoder()``, else the usual attributes: ``language_model``, ``text_model``, ``model``...)
  and its decoder layers, the ``ModuleList`` as long as the text config's ``num_hidden_layers``;
- in each layer, its softmax-attention module and that module's output projection, checked by size
  (``in_features == n_heads * head_dim``). A layer with self- and cross-attention (BLIP's text decoder) is read at
  its self-attention; a layer with cross-attention alone (Mllama's) at that. Hybrid decoders (linear attention,
  convolution or Mamba layers beside attention layers) have heads only in their attention layers, each keeping its
  real layer number.

``refusal(config)`` says, from a config alone (its module tree built on the meta device, no weights), why a model
cannot be supported, or None; ``load_model`` raises that reason as ``UnsupportedModelError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Names an attention module gives its output projection, in the order they are tried.
OUTPUT_PROJECTIONS = ("o_proj", "out_proj", "dense", "wo", "c_proj", "o", "out", "proj", "output_proj")
# Names a decoder layer gives its attention module, preferred in this order when a layer holds several.
ATTENTION_NAMES = ("self_attn", "self_attention", "attention", "attn", "mixer", "cross_attn")
# Parts of a class name (lower case) that mark a sequence mixer without softmax heads.
NOT_SOFTMAX = ("linear", "deltanet", "mamba", "conv", "ssm", "lightning", "retention", "rwkv", "recurrent")
# Parts of a ``layer_types`` entry that mark a layer without softmax attention.
HEADLESS_LAYER_TYPES = ("linear", "mamba", "conv", "mlp", "moe", "ssm", "recurrent")
# Where a model keeps its text decoder when ``get_decoder()`` does not say.
DECODER_PATHS = ("language_model", "text_model", "model.language_model", "model.text_model", "model", "decoder")
# Parts of a module path that mark a list of layers as the vision (or audio) side's, not the text decoder's.
NOT_TEXT = ("vision", "visual", "image", "vit", "qformer", "audio", "patch")


class UnsupportedModelError(ValueError):
    """A model whose attention heads have no clear output at the last prompt token (the message says why)."""


@dataclass(frozen=True)
class HeadLayout:
    """The decoder of a model as extraction sees it: its layers, which carry heads, and each one's output projection."""

    decoder: nn.Module
    layers: nn.ModuleList
    o_projs: dict[int, nn.Module]  # real layer number -> output projection, attention layers only (ascending)
    n_heads: int
    head_dim: int

    @property
    def head_layers(self) -> tuple[int, ...]:
        return tuple(self.o_projs)

    def final_norm(self) -> nn.Module | None:
        """The norm the decoder applies after its last layer (what the LM head reads): by its usual names, else the
        decoder's one child norm; None for a decoder with no norm of its own (post-norm layers)."""
        for name in ("norm", "final_layernorm", "final_norm", "ln_f", "norm_f", "final_layer_norm"):
            module = getattr(self.decoder, name, None)
            if isinstance(module, nn.Module):
                return module
        norms = [m for m in self.decoder.children() if "norm" in type(m).__name__.lower()]
        if len(norms) > 1:
            raise UnsupportedModelError(f"{type(self.decoder).__name__} has several norms; which is the final one?")
        return norms[0] if norms else None


def _attr_path(obj: object, path: str) -> object | None:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _layer_list(module: nn.Module, n_layers: int) -> nn.ModuleList | None:
    """The module's decoder layers: ``.layers`` when it is ``n_layers`` long, else the only child list that is."""
    layers = getattr(module, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers) == n_layers:
        return layers
    lists = [m for m in module.children() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
    return lists[0] if len(lists) == 1 else None


def find_decoder(model: nn.Module, n_layers: int) -> tuple[nn.Module, nn.ModuleList]:
    """The text decoder and its ``n_layers`` decoder layers."""
    candidates = []
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        try:
            candidates.append(get_decoder())
        except (AttributeError, NotImplementedError, TypeError):
            pass
    candidates += [_attr_path(model, path) for path in DECODER_PATHS]
    for decoder in candidates:
        if isinstance(decoder, nn.Module):
            inner = getattr(decoder, "model", None)  # a causal LM wrapper returned in place of its decoder
            for module in (decoder, inner) if isinstance(inner, nn.Module) else (decoder,):
                layers = _layer_list(module, n_layers)
                if layers is not None:
                    return module, layers
    # elsewhere (a BERT-style ``encoder.layer`` of a causal text decoder): the one such list outside the vision parts
    lists = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and len(m) == n_layers and not any(w in name.lower() for w in NOT_TEXT)
    ]
    if len(lists) == 1:
        parent = lists[0].rpartition(".")[0]
        return model.get_submodule(parent), model.get_submodule(lists[0])
    raise UnsupportedModelError(
        f"no text decoder with {n_layers} layers (the text config's num_hidden_layers) found in {type(model).__name__}"
    )


def _is_softmax_attention(name: str, module: nn.Module) -> bool:
    """Whether a layer's submodule is a softmax attention by its class and attribute name."""
    cls = type(module).__name__.lower()
    return ("attention" in cls or "attn" in cls) and not any(
        word in cls or word in name.lower() for word in NOT_SOFTMAX
    )


def _geometry(attention: nn.Module, text_config) -> tuple[int | None, int | None]:
    """(n_heads, head_dim) as the attention module, else its config, else the text config says."""
    config = getattr(attention, "config", None) or text_config
    # what each head hands the output projection: its value size (MLA's v_head_dim differs from its query/key size)
    head_dim = getattr(attention, "v_head_dim", None) or getattr(attention, "head_dim", None)
    if not isinstance(head_dim, int):
        head_dim = getattr(config, "v_head_dim", None)
    if not isinstance(head_dim, int):
        head_dim = getattr(config, "head_dim", None) or getattr(text_config, "head_dim", None)
    counts = [getattr(attention, k, None) for k in ("num_heads", "num_attention_heads", "n_heads")]
    counts += [getattr(config, "num_attention_heads", None), getattr(text_config, "num_attention_heads", None)]
    n_heads = next((v for v in counts if isinstance(v, int)), None)
    if not isinstance(head_dim, int) and isinstance(n_heads, int):
        head_dim = getattr(text_config, "hidden_size", 0) // n_heads or None
    return n_heads, head_dim


def _output_projection(attention: nn.Module, width: int) -> nn.Module | None:
    """The attention module's output projection: a ``Linear`` child by one of the usual names taking ``width``."""
    for name in (*OUTPUT_PROJECTIONS, "output.dense"):  # BERT-style layers keep it in an ``output`` block
        proj = _attr_path(attention, name)
        if isinstance(proj, nn.Linear) and proj.in_features == width:
            return proj
    return None


def _layer_attention(layer: nn.Module, text_config) -> tuple[nn.Module, int, int] | None:
    """A layer's softmax attention: (output projection, n_heads, head_dim); None for a layer without one."""
    found = []
    for name, module in layer.named_modules():
        if name.count(".") > 1 or not name or not _is_softmax_attention(name, module):
            continue
        n_heads, head_dim = _geometry(module, text_config)
        if not (isinstance(n_heads, int) and isinstance(head_dim, int)):
            continue
        proj = _output_projection(module, n_heads * head_dim)
        if proj is not None:
            found.append((name, proj, n_heads, head_dim))
    if len(found) > 1:  # e.g. self- and cross-attention in one layer: keep the self-attention by its usual name
        rank = {name: i for i, name in enumerate(ATTENTION_NAMES)}
        found.sort(key=lambda f: rank.get(f[0], len(rank)))
        if found[0][0] not in rank:
            raise UnsupportedModelError(
                f"a decoder layer ({type(layer).__name__}) holds several attention modules "
                f"({', '.join(f[0] for f in found)}); which one's heads to read is not clear"
            )
    return found[0][1:] if found else None


def _headless(text_config, layer: int) -> bool:
    """Whether the config's ``layer_types`` marks ``layer`` as one without softmax attention (linear, conv, mamba)."""
    types = getattr(text_config, "layer_types", None)
    if not isinstance(types, (list, tuple)) or layer >= len(types):
        return False
    kind = str(types[layer]).lower()
    return any(word in kind for word in HEADLESS_LAYER_TYPES)


def find_heads(model: nn.Module, text_config) -> HeadLayout:
    """The model's decoder, its layers and the output projection of each layer with softmax heads."""
    n_layers = getattr(text_config, "num_hidden_layers", None)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise UnsupportedModelError(f"the text config ({type(text_config).__name__}) gives no num_hidden_layers")
    decoder, layers = find_decoder(model, n_layers)
    o_projs, shapes = {}, set()
    for i, layer in enumerate(layers):
        found = None if _headless(text_config, i) else _layer_attention(layer, text_config)
        if found is not None:
            o_projs[i] = found[0]
            shapes.add(found[1:])
    if not o_projs:
        raise UnsupportedModelError(
            f"no softmax-attention output projection ({'/'.join(OUTPUT_PROJECTIONS[:4])}/... taking n_heads * head_dim "
            f"inputs) in any of the {n_layers} decoder layers of {type(model).__name__}"
        )
    if len(shapes) > 1:
        raise UnsupportedModelError(
            f"attention layers of {type(model).__name__} differ in (heads, head size): {sorted(shapes)}; "
            "a SAV's head grid needs one shape"
        )
    (n_heads, head_dim) = shapes.pop()
    return HeadLayout(decoder=decoder, layers=layers, o_projs=o_projs, n_heads=n_heads, head_dim=head_dim)


# ----- refusing a model from its config -----------------------------------------------------------------------------
def _is_encoder_decoder(config) -> bool:
    text = config.get_text_config(decoder=True)
    return bool(getattr(config, "is_encoder_decoder", False) or getattr(text, "is_encoder_decoder", False))


def config_refusal(config) -> str | None:
    """The reason a config alone rules a model out (no module tree needed), or None."""
    if _is_encoder_decoder(config):
        return (
            "encoder-decoder: the prompt is read by a bidirectional encoder and the decoder holds none of its tokens, "
            "so a head's output at the last prompt token is not defined"
        )
    return None


def meta_model(config, auto_model: type) -> nn.Module:
    """The model ``auto_model`` would build from ``config``, on the meta device (module tree only, no memory)."""
    with torch.device("meta"):
        return auto_model.from_config(config)
