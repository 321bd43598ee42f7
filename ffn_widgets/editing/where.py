"""Where to edit: default edit layers measured by :func:`~ffn_widgets.edit_layer_sweep`, per model name.

SmolLM2-135M-Instruct, layer 4 of 30: in the layer sweep (r-ROME, 6 dev facts of 6 relations, every second
layer) layers 0–4 form the plateau of success (score S 0.94–0.97, ES 100, NS 100; the differences are one
paraphrase of twelve), S falls from layer 6 on and edits stop working above layer 22. Layer 4 is also the
peak of the MLP causal trace at the last subject token (notebook 03), and of the plateau it spills least onto
other subjects with the same last token (editing "The Eiffel Tower" → Rome moved 2 of 4 other "… Tower"
prompts at layer 4, 3 of 4 at layers 0 and 2).
"""

# model name -> (layer, the model's number of layers)
MEASURED_LAYERS: dict[str, tuple[int, int]] = {"SmolLM2-135M-Instruct": (4, 30)}

# MEMIT's λ (mom2_update_weight) per model name. SmolLM2-135M-Instruct: with GPT-J's 15,000 the update is too
# weak on this model's key scale (6 dev facts at layers 0–4: ES 50, PS 33); 1,500 writes them all (ES 100,
# PS 83, NS 100, ‖ΔW‖ 49); 150 scores the same with a larger update (‖ΔW‖ 58).
MEASURED_MOM2_WEIGHTS: dict[str, float] = {"SmolLM2-135M-Instruct": 1500.0}
