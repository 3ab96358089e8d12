"""Sparse Attention Vectors: few-shot classifiers from the attention heads of generative multimodal models.

Mitra et al., "Sparse Attention Vectors: Generative Multimodal Model Features Are Discriminative
Vision-Language Classifiers", ICCV 2025 (arXiv 2412.00142).

The names below import their module on first use (``savs.lazy``), so the model-free parts (``savs.classifier``,
``savs.examples``, ``savs.report``, ...) import without torch or transformers.
"""

from savs.lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "MODELS": "savs.models.registry",
    "Example": "savs.examples",
    "SAVClassifier": "savs.classifier",
    "SAVPipeline": "savs.pipeline",
    "Task": "savs.examples",
    "extract_heads": "savs.extract",
    "fit_sav": "savs.pipeline",
    "load_model": "savs.models.registry",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
