"""Model adapters: the generic one (any supported model type) and the paper's families as its declared differences,
one registry of named models, one ``load_model``, and ``refusal`` (why a model type is not supported).

The public names import their module on first use (``savs.lazy``): a family's adapter (and savs-mini's, in
``savs.mini``) imports ``savs.models.base``, which runs this file, and must not pull in the registry that
imports every adapter.
"""

from savs.lazy import lazy_exports

_EXPORTS = {
    "ADAPTERS": "savs.models.registry",
    "GENERIC_MODELS": "savs.models.registry",
    "MODELS": "savs.models.registry",
    "Adapter": "savs.models.base",
    "GenericAdapter": "savs.models.generic",
    "ModelSpec": "savs.models.registry",
    "UnsupportedModelError": "savs.models.discovery",
    "adapter_class": "savs.models.registry",
    "load_model": "savs.models.registry",
    "refusal": "savs.models.registry",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
