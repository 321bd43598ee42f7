"""Issue 5 benchmark: knowledge-neuron attribution (integrated gradients over every layer, 20 steps) on the
default model, batched engine vs the straightforward loop, with the same scores.

- ``loop``: for each layer, its 20 scaled copies of the prompt as one batch; full forward and backward
  (last-position logits only), the layer's last-position activations replaced by α·m̂.
- ``batched``: :func:`ffn_widgets.analysis.knowledge.attribution`: single-token steps on the clean prompt's
  key/value cache (scaling the last position leaves earlier positions unchanged), (layer, α) rows of
  several layers in one batch started from the cached block input, one backward per batch.

Runs are interleaved; medians are reported, and the scores of both must agree within float tolerance.
With ``--experiment N`` it also runs the suppress/amplify experiment on the first N dev facts. Both run on the
model's device (tensors made there); on accelerators the clock is read after a synchronise.

Usage: python benchmarks/bench_knowledge.py [--repeats 3] [--threads N] [--experiment N] [--drop-shared 0.2]
       model options (benchmarks/common.py): [--device cuda] [--dtype bfloat16] [--random-weights CONFIG]
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import common  # noqa: E402
import torch  # noqa: E402

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.analysis.knowledge import attribution, riemann_alphas  # noqa: E402
from ffn_widgets.model import Intervention, hooked  # noqa: E402

PROMPT = "The Eiffel Tower is located in the city of"
TARGET = " Paris"


def loop_attribution(lm, prompt: str, target: str, steps: int = 20) -> torch.Tensor:
    """The straightforward computation: one batched forward + backward of the full prompt per layer."""
    ids = lm.encode(prompt)[None]
    target_id = lm.target_ids(target)[0]
    layers = range(lm.n_layers)
    with torch.no_grad(), hooked(lm, [("neurons", l) for l in layers]) as got:
        lm.forward(ids, last_only=True)
    alphas = riemann_alphas(steps).to(lm.device)
    scores = torch.zeros(lm.n_layers, lm.d_mlp)  # on the CPU, like attribution()'s
    for layer in layers:
        m = got["neurons", layer][0, -1]
        leaf = (alphas[:, None] * m.float()[None]).requires_grad_(True)

        def replace(x, leaf=leaf):
            x = x.clone()
            x[:, -1] = leaf
            return x

        with torch.enable_grad(), hooked(lm, (), [Intervention("neurons", layer, "fn", replace)]):
            logits = lm.forward(ids.expand(steps, -1), last_only=True)[:, -1]
            p = torch.softmax(logits, -1)[:, target_id]
            (grad,) = torch.autograd.grad(p.sum(), leaf)
        scores[layer] = (m * grad.mean(0)).float().cpu()
    return scores


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--experiment", type=int, default=0, help="also run the experiment on the first N dev facts")
    ap.add_argument("--drop-shared", type=float, default=None, help="the experiment's drop_shared (e.g. 0.2)")
    common.add_model_args(ap)
    args = ap.parse_args()
    lm = common.load(args)
    print(common.describe(lm))
    n_tokens = len(lm.encode(PROMPT))
    times = {"loop": [], "batched": []}
    for _ in range(args.repeats):
        t, fast = common.timed(lambda: attribution(lm, PROMPT, TARGET), lm.device)
        times["batched"].append(t)
        t, slow = common.timed(lambda: loop_attribution(lm, PROMPT, TARGET), lm.device)
        times["loop"].append(t)
        diff = float((fast - slow).abs().max())
        scale = float(slow.abs().max())
        assert diff <= (1e-4 if lm.dtype == torch.float32 else 5e-2) * scale, (diff, scale)  # half: rounding
    loop, batched = statistics.median(times["loop"]), statistics.median(times["batched"])
    print(f"integrated gradients, {lm.name}, {n_tokens}-token prompt, {lm.n_layers} layers x 20 steps, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} interleaved runs (medians):")
    print(f"  loop     {loop:8.2f} s")
    print(f"  batched  {batched:8.2f} s   {loop / batched:5.1f}x faster; "
          f"max |score difference| {diff:.2e} (max |score| {scale:.3f})")
    top = torch.topk(fast.flatten(), 5)
    print("  top neurons:", [(int(i) // lm.d_mlp, int(i) % lm.d_mlp, round(float(v), 4))
                             for v, i in zip(top.values, top.indices)])
    if args.experiment:
        facts = fw.load_facts()[:args.experiment]
        t, s = common.timed(lambda: fw.knowledge_experiment(lm, facts, drop_shared=args.drop_shared).summary(),
                            lm.device)
        print(f"experiment on {len(facts)} dev facts ({t:.0f} s): "
              + ", ".join(f"{k} {v:.3g}" for k, v in s.items()))


if __name__ == "__main__":
    main()
