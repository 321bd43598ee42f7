// Talking to the active notebook's kernel without a cell: the silent readiness check (a user expression) and
// silent runs, whose errors come back in the execute reply.
import type { NotebookPanel } from "@jupyterlab/notebook";
import { CHECK_EXPRESSION, parseCheck, type KernelState } from "./text";

/** The kernel's state, or a sentence saying why it cannot be asked. */
export async function kernelState(panel: NotebookPanel): Promise<KernelState | string> {
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) return "This notebook has no running kernel: start one from the Kernel menu.";
  const future = kernel.requestExecute({
    code: "", silent: true, store_history: false, stop_on_error: false, user_expressions: { ffn: CHECK_EXPRESSION },
  });
  const reply = await future.done;
  const answer = (reply.content as any).user_expressions?.ffn;
  if (!answer || answer.status !== "ok") {
    return "This notebook's kernel could not answer (is it a Python kernel?).";
  }
  try {
    return parseCheck(String(answer.data?.["text/plain"] ?? ""));
  } catch (err) {
    return String(err);
  }
}

/** Run code in the kernel without a cell; resolves to the error ("Name: message"), or null when it ran. */
export async function runSilently(panel: NotebookPanel, code: string): Promise<string | null> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) return "This notebook has no running kernel.";
  const future = kernel.requestExecute({ code, silent: true, store_history: false, stop_on_error: false });
  const reply = await future.done;
  const content = reply.content as any;
  return content.status === "error" ? `${content.ename}: ${content.evalue}` : null;
}
