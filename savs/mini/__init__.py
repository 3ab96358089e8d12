"""savs-mini: a small LLaVA-style LMM (EfficientNet-Lite0 -> MLP projector -> SmolLM2-135M-Instruct), built offline.

``convert`` turns the GGUF into a safetensors cache, ``vision`` is the frozen image encoder, ``model`` the
LMM, ``adapter`` its ``savs.models.base.Adapter`` (what extraction, baselines and notebooks see), ``train`` the
stage-1 alignment recipe; ``weights/`` holds the trained projector. Of ``savs.models`` this package uses only
``base``; the registry names the adapter (``"savs.mini.adapter:MiniAdapter"``) and imports it on first use.
"""
