// The registry of views: the Python class sets `view` to one of these names.
// To add a view: write js/src/views/<name>.ts exporting `render({model, el})` (returning a cleanup
// function), import it here and add one line to `views`.
import type { View } from "../types";
import { render as activations } from "./activations";
import { render as causalTrace } from "./causal_trace";
import { render as explorer } from "./explorer";
import { render as lens } from "./lens";
import { render as neuronCard } from "./neuron_card";
import { render as neurons } from "./neurons";
import { render as sliders } from "./sliders";

export const views: Record<string, View> = {
  causal_trace: causalTrace,
  explorer,
  heatmap: activations,
  lens,
  neuron_card: neuronCard,
  neurons,
  sliders,
};
