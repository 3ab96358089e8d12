"""savs-mini: a small LLaVA-style LMM (EfficientNet-Lite0 -> MLP projector -> SmolLM2-135M-Instruct), built offline.

``convert`` turns the GGUF into a safetensors cache, ``vision`` is the frozen image encoder, ``model`` the
LMM, ``train`` the stage-1 alignment recipe; ``savs.models.mini.MiniAdapter`` exposes it to extraction.
"""
