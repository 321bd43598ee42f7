// core/: the plumbing every part of the front end shares, and nothing that draws a view of its own:
// the anywidget model's types, the message channel to the kernel, child widgets drawn inside a view,
// binary arrays, safe DOM building, number and token text, the host's theme and colour scales, the shared stylesheet, and the frame
// (error, progress) around every view. Core modules import only each other; components/ and views/
// import core through this file.
export * from "./arrays";
export * from "./children";
export * from "./dom";
export * from "./format";
export * from "./frame";
export * from "./messages";
export * from "./narrow";
export * from "./style";
export * from "./theme";
export * from "./types";
