// How numbers and model tokens are written on screen. Both return plain text: insert it with textContent
// or fillText, never as markup.
const VISIBLE: Record<string, string> = { "\r\n": "⏎", "\n": "⏎", "\r": "⏎", "\t": "⇥" };

/** How a model token looks on screen, the one helper every view uses for tokens: every whitespace
 * character made visible (space ␣, newline ⏎, tab ⇥; other spaces such as U+00A0 as ␣), an empty
 * token as ∅. The result is plain text: insert it with textContent or fillText, never as markup. */
export function showToken(token: string): string {
  return token.replace(/\r\n|\s/g, (w) => VISIBLE[w] ?? "␣") || "∅";
}

/** A number for a cell, tooltip or axis end: 3 decimals below 10, fewer above, exponents outside [1e-3, 1e5). */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(3);
}
