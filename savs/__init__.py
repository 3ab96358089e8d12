"""Sparse Attention Vectors: few-shot classifiers from the attention heads of generative multimodal models.

Mitra et al., "Sparse Attention Vectors: Generative Multimodal Model Features Are Discriminative
Vision-Language Classifiers", ICCV 2025 (arXiv 2412.00142).
"""

from savs.classifier import SAVClassifier
from savs.examples import Example, Task
from savs.extract import extract_heads
from savs.models import MODELS, load_model
from savs.pipeline import SAVPipeline, fit_sav

__version__ = "0.1.0"
__all__ = [
    "MODELS",
    "Example",
    "SAVClassifier",
    "SAVPipeline",
    "Task",
    "extract_heads",
    "fit_sav",
    "load_model",
]
