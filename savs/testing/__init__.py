"""The test harness, kept out of the library: what tests, ``make paper-dryrun`` and the architecture sweep run on.

``random_models``: random-weight stand-ins of every supported family and of the paper's two checkpoints (their chat
templates and processor settings in ``checkpoints/``), loaded as ``random:<family>``; ``random_types``: a random-weight
model of every image-text-to-text type in transformers (``random_type_specs``, ``pil_processors``); ``benchmarks``:
local stand-ins of every benchmark, at the real split sizes (the dry run) or a few rows each (the tests). Nothing
here is trained: savs-mini, the embedded model with a trained projector, lives in ``savs.mini``.
"""
