// views/: one file per view, each exporting `render({model, el})` that draws it and returns its cleanup.
// This file is the registry: the Python class sets `view` to one of the names below. prompt.ts (with
// prompt_data.ts) is the shared body of the three prompt views: explorer, heatmap (activations.ts), lens;
// editor_report.ts holds the editor's after-the-edit parts.
// Views are built from components/ and core/; no view reaches into another's insides.
// To add a view: write views/<name>.ts, import it here and add one line to `views`.
import type { View } from "../core";
import { render as activations } from "./activations";
import { render as causalTrace } from "./causal_trace";
import { render as dock } from "./dock";
import { render as editor } from "./editor";
import { render as explorer } from "./explorer";
import { render as lens } from "./lens";
import { render as localize } from "./localize";
import { render as neuronCard } from "./neuron_card";
import { render as neurons } from "./neurons";
import { render as sliders } from "./sliders";
import { render as stability } from "./stability";
import { render as traceAverage } from "./trace_average";

export const views: Record<string, View> = {
  causal_trace: causalTrace,
  dock,
  editor,
  explorer,
  heatmap: activations,
  lens,
  localize,
  neuron_card: neuronCard,
  neurons,
  sliders,
  stability,
  trace_average: traceAverage,
};
