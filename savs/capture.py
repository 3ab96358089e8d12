"""Hooks that read the per-head attention outputs at one token, and stop the pass when nothing deeper is needed.

The input of ``self_attn.o_proj`` is the concatenation of every head's output, head-major:
``(B, T, n_heads * head_dim)``. A forward pre-hook on ``o_proj`` keeps one row per example (the last
prompt token) and, at the deepest layer asked for, raises ``StopForward`` so no later layer (and never
the LM head) is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # a type only: importing savs.models here would be circular
    from savs.models.base import Adapter


class StopForward(Exception):
    """Raised from the deepest hook needed: the rest of the forward pass would be wasted work."""


class LastTokenCapture:
    """Drives one forward pass whose hooks keep token ``index[b]`` of each row; subclasses say what they keep."""

    index: torch.Tensor | None = None

    def run(self, forward: Callable[[], object], index: torch.Tensor | None) -> torch.Tensor | None:
        """Run ``forward`` keeping token ``index[b]`` of each example: the kept tensor, fp32 on the CPU.

        ``index=None`` keeps nothing (for a pass that only fills a KV cache) and returns None.
        """
        self.index = index
        self.reset()
        try:
            forward()
        except StopForward:
            pass
        finally:
            self.index = None
        return None if index is None else self.result()

    def reset(self) -> None:
        """Forget the previous pass."""
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        """What this pass kept."""
        raise NotImplementedError


class HeadCapture(LastTokenCapture):
    """Per-head vectors of the hooked layers. Build it with ``capture_heads``."""

    def __init__(self, layers: Sequence[int], n_heads: int, head_dim: int, stop_at: int | None) -> None:
        self.layers = list(layers)
        self.n_heads, self.head_dim, self.stop_at = n_heads, head_dim, stop_at
        self.store: dict[int, torch.Tensor] = {}

    def hook(self, layer: int, module: torch.nn.Module, args: tuple) -> None:
        """Keep row ``index[b]`` of every example ``b``; stop after the deepest layer needed."""
        if self.index is not None:  # None: a pass run only to fill a KV cache
            x = args[0]  # (B, T, H*d)
            rows = torch.arange(x.shape[0], device=x.device)
            last = x[rows, self.index.to(x.device)]  # (B, H*d)
            self.store[layer] = last.float().view(-1, self.n_heads, self.head_dim)  # (B, H, d)
        if layer == self.stop_at:
            raise StopForward

    def reset(self) -> None:
        self.store = {}

    def result(self) -> torch.Tensor:
        """``(B, n_layers, H, d)``."""
        missing = [layer for layer in self.layers if layer not in self.store]
        if missing:
            raise RuntimeError(f"the forward pass never reached o_proj of layers {missing}")
        return torch.stack([self.store.pop(layer) for layer in self.layers], dim=1).cpu()  # (B, L, H, d)


@contextmanager
def capture_heads(
    adapter: Adapter, layers: Sequence[int] | None = None, stop_early: bool = True
) -> Iterator[HeadCapture]:
    """Hook ``o_proj`` of ``layers`` (all by default) for the duration of the block; hooks always removed."""
    layers = list(range(adapter.n_layers)) if layers is None else sorted(set(layers))
    bad = [layer for layer in layers if not 0 <= layer < adapter.n_layers]
    if bad or not layers:
        raise ValueError(f"layers {bad or layers} outside 0..{adapter.n_layers - 1}")
    capture = HeadCapture(layers, adapter.n_heads, adapter.head_dim, max(layers) if stop_early else None)
    handles = [
        adapter.o_proj(layer).register_forward_pre_hook(
            lambda module, args, layer=layer: capture.hook(layer, module, args)
        )
        for layer in layers
    ]
    try:
        yield capture
    finally:
        for handle in handles:
            handle.remove()
