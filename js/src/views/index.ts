// The registry of views: the Python class sets `view` to one of these names.
// To add a view: write js/src/views/<name>.ts exporting `render({model, el})` (returning a cleanup
// function), import it here and add one line to `views`.
import type { View } from "../types";

export const views: Record<string, View> = {};
