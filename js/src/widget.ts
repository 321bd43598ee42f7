// The entry of the single ESM bundle behind every ffn_widgets widget: anywidget reads the default export
// (`initialize` and `render`, in host.ts); saved HTML pages use `mountExports`.
import { initialize, render } from "./host";

export default { initialize, render };

// The kernel-less host of saved HTML pages (ffn_widgets/widgets/export.py); anywidget reads only the default export.
export { mountExports } from "./standalone";
