"""Hooks that read features at one token of every row, and stop the pass when nothing deeper is needed.

Two features, from one forward pass:

- ``heads``: the input of an attention layer's output projection (``adapter.o_proj``, e.g. ``self_attn.o_proj``)
  is the concatenation of every head's output, head-major,
  ``(B, T, n_heads * head_dim)``; a forward pre-hook keeps its row at the last prompt token, split per head.
- ``hidden``: transformers' ``hidden_states[i]`` at that token (0: the embeddings with images spliced in,
  ``i``: decoder layer ``i - 1``'s output, ``n_layers``: after the final norm, what the LM head reads).

Once every hooked point has fired, the last hook raises ``StopForward``: no later layer (and never the LM head)
is computed.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from savs.models.base import Adapter


class StopForward(Exception):
    """Raised from the deepest hook needed: the rest of the forward pass would be wasted work."""


class FeatureCapture:
    """Drives forward passes whose hooks keep token ``index[b]`` of each row. Build it with ``capture_features``.

    Hooks call ``keep(point, tensor)``; ``run`` returns ``{"heads": (B, L, H, d), "hidden": (B, D)}`` (what
    was asked for; ``L`` in the order of ``head_layers``), fp32 on the CPU.
    """

    def __init__(
        self, head_layers: Sequence[int], hidden: int | None, head_shape: tuple[int, int], stop_early: bool
    ) -> None:
        self.head_layers, self.hidden, self.head_shape = list(head_layers), hidden, head_shape
        self.points = [*(f"heads.{layer}" for layer in self.head_layers), *(["hidden"] if hidden is not None else [])]
        self.stop_early = stop_early
        self.index: torch.Tensor | None = None
        self.kept: dict[str, torch.Tensor | None] = {}

    @property
    def outputs(self) -> list[str]:
        """The features each pass returns."""
        return ["heads"] * bool(self.head_layers) + ["hidden"] * (self.hidden is not None)

    def keep(self, point: str, x: torch.Tensor) -> None:
        """Keep row ``index[b]`` of every example ``b`` of ``x`` ``(B, T, D)`` (a negative index counts from the end);
        stop once every point has fired."""
        rows = torch.arange(x.shape[0], device=x.device)
        # index None: a pass run only to fill a KV cache keeps nothing, but still stops where the others would
        self.kept[point] = None if self.index is None else x[rows, self.index.to(x.device)].float()
        if self.stop_early and len(self.kept) == len(self.points):
            raise StopForward

    def run(self, forward: Callable[[], object], index: torch.Tensor | None) -> dict[str, torch.Tensor] | None:
        """Run ``forward`` keeping token ``index[b]`` of each example; ``index=None`` keeps nothing (returns None)."""
        self.index, self.kept = index, {}
        try:
            forward()
        except StopForward:
            pass
        finally:
            self.index = None
        if index is None:
            return None
        missing = [p for p in self.points if self.kept.get(p) is None]
        if missing:
            raise RuntimeError(f"the forward pass never reached {missing}")
        out = {}
        if self.head_layers:
            heads = [self.kept[f"heads.{layer}"].view(-1, *self.head_shape) for layer in self.head_layers]
            out["heads"] = torch.stack(heads, dim=1).cpu()  # (B, L, H, d)
        if self.hidden is not None:
            out["hidden"] = self.kept["hidden"].cpu()  # (B, D)
        return out


def hidden_index(adapter: Adapter, layer: int) -> int:
    """``layer`` as an index of ``hidden_states`` in ``0..n_layers`` (negative counts from the end)."""
    n = adapter.n_layers
    if not -(n + 1) <= layer <= n:
        raise ValueError(f"layer {layer} outside -{n + 1}..{n} (hidden_states of {n} decoder layers)")
    return layer % (n + 1)


@contextmanager
def capture_features(
    adapter: Adapter, heads: Sequence[int] = (), hidden: int | None = None, stop_early: bool | None = None
) -> Iterator[FeatureCapture]:
    """Hook the per-head vectors of decoder layers ``heads`` (real layer numbers, each one of ``adapter.head_layers``)
    and/or ``hidden_states[hidden]`` for the duration of the block; hooks always removed. The capture keeps the
    layers in ascending order (``FeatureCapture.head_layers``); a layer asked for twice is an error, not silently
    merged. ``stop_early``: end each pass once every hook has fired; None (the default): where the adapter found
    that this changes nothing (``adapter.early_stop_ok``)."""
    head_layers = sorted(operator.index(layer) for layer in heads)
    repeated = sorted({a for a, b in itertools.pairwise(head_layers) if a == b})
    if repeated:
        raise ValueError(f"layers {repeated} asked for more than once")
    bad = [layer for layer in head_layers if not 0 <= layer < adapter.n_layers]
    if bad:
        raise ValueError(f"layers {bad} outside 0..{adapter.n_layers - 1}")
    headless = sorted(set(head_layers) - set(adapter.head_layers))
    if headless:
        raise ValueError(
            f"decoder layers {headless} of {adapter.name} have no softmax-attention heads (a hybrid decoder); "
            f"layers with heads: {list(adapter.head_layers)}"
        )
    hidden = None if hidden is None else hidden_index(adapter, hidden)
    if not head_layers and hidden is None:
        raise ValueError("nothing to capture: ask for heads, a hidden state, or both")
    stop_early = adapter.early_stop_ok if stop_early is None else stop_early
    capture = FeatureCapture(head_layers, hidden, (adapter.n_heads, adapter.head_dim), stop_early)
    handles = [
        adapter.o_proj(layer).register_forward_pre_hook(lambda m, args, p=f"heads.{layer}": capture.keep(p, args[0]))
        for layer in head_layers
    ]
    if hidden == 0:  # the first layer's input
        handles.append(
            adapter.layers()[0].register_forward_pre_hook(
                lambda m, args, kwargs: capture.keep("hidden", args[0] if args else kwargs["hidden_states"]),
                with_kwargs=True,
            )
        )
    elif hidden is not None:
        module = adapter.layers()[hidden - 1] if hidden < adapter.n_layers else adapter.final_norm()
        handles.append(
            module.register_forward_hook(
                lambda m, args, out: capture.keep("hidden", out[0] if isinstance(out, tuple) else out)
            )
        )
    try:
        yield capture
    finally:
        for handle in handles:
            handle.remove()
