"""The methods the experiments compare, by name, in the main table's row order: baselines first, then SAVs'
ablations, SAVs last.

``savs.experiments.METHODS`` defines each (and loads torch); this list is what the report needs to order its
rows, so the tables import without torch.
"""

METHOD_NAMES = (
    "zero-shot",
    "ICL",
    "LoRA",
    "linear probe",
    "k-NN",
    "vision-encoder probe",
    "SAVs, blank images",
    "last layer (NCM)",
    "all layers (NCM)",
    "all heads vote",
    "SAVs",
)
