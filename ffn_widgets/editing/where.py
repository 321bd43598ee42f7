"""Where to edit: default edit layers measured by :func:`~ffn_widgets.edit_layer_sweep`, per model name."""

# model name -> (layer, the model's number of layers). Measured with edit_layer_sweep (see notebook 04 and README).
MEASURED_LAYERS: dict[str, tuple[int, int]] = {}
