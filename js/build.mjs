// Bundle js/src into the single ESM file the Python widgets load (ffn_widgets/static/widget.js).
import { build } from "esbuild";
import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(here, "..", "ffn_widgets", "static", "widget.js");
mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [resolve(here, "src", "widget.ts")],
  bundle: true,
  format: "esm",
  minify: !process.argv.includes("--dev"),
  target: ["es2020"],
  outfile,
  legalComments: "none",
  logLevel: "warning",
});
console.log(`built ${outfile} (${(statSync(outfile).size / 1024).toFixed(1)} KB)`);
