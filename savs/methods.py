"""The methods the experiments compare, by name, and what the report needs of them without loading torch.

``METHOD_NAMES``: the main table's rows in order (baselines first, then SAVs' ablations, SAVs, then our read-out);
``savs.experiments.METHODS`` defines each. ``HEAD_METHODS``: the head rules notebook 06 compares, as
``SAVClassifier`` options. ``bootstrap_resamples``: the test-example resamples every method's interval shares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METHOD_NAMES = (
    "zero-shot",
    "ICL",
    "LoRA",
    "MTV",
    "linear probe",
    "linear probe, all heads",
    "k-NN",
    "vision-encoder probe",
    "SAVs, blank images",
    "last layer (NCM)",
    "all layers (NCM)",
    "all heads vote",
    "SAVs",
    "SAV heads, logistic read-out (ours)",
)
# The main table's read-out row, fixed before any result was seen (issue #23): the profile's SAV heads (its n_heads,
# its scoring and selection) read by the logistic read-out, instead of their vote. Not picked on test data.
BEST_READOUT = {"name": "SAV heads, logistic read-out (ours)", "readout": "logistic"}

# Name -> SAVClassifier options. "SAVs" is the paper's rule; each next one changes one choice, the last combines
# them. Those fixing n_heads run once per seed; the others run at every head count of the study's grid.
HEAD_METHODS: dict[str, dict[str, Any]] = {
    "SAVs": {},
    "LOO scoring": {"scoring": "leave_one_out"},
    "5-fold CV scoring": {"scoring": "cv"},
    "Fisher scoring (HEC)": {"scoring": "fisher"},
    "pursuit selection": {"selection": "pursuit"},
    "CALM voting": {"voting": "reliability"},
    "CV + pursuit + CALM": {"scoring": "cv", "selection": "pursuit", "voting": "reliability"},
    "all heads vote": {"n_heads": "all"},
    "CALM, all heads": {"n_heads": "all", "voting": "reliability"},
}
HEAD_METHOD_PROBES = ("linear probe", "vision-encoder probe")  # from METHODS, where the profile switches them on
N_BOOTSTRAP = 2000


def bootstrap_resamples(n: int, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(n_boot, n) test-example indices drawn with replacement: fixed, so every method is resampled alike (paired)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
