"""Where to edit: the per-model default layers measured by the layer sweep."""

# fingerprint of the weights -> layer. Filled from edit_layer_sweep runs (see the notebook 04 and README).
MEASURED_LAYERS: dict[str, int] = {}
