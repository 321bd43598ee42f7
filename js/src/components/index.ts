// components/: reusable parts that views assemble: the canvas heatmap and its tooltip placement, the
// colour-bar legend, segmented buttons, the neuron table and the prompt/target bar. Each takes data and
// callbacks, never the widget model, so any view can use it. Components import only core/ (and each other).
export * from "./heatmap";
export * from "./layer_strip";
export * from "./legend";
export * from "./line_chart";
export * from "./neuron_table";
export * from "./prompt_bar";
export * from "./segmented";
export * from "./series_chart";
export * from "./tooltip";
