#!/usr/bin/env bash
# Issue 14's GPU check: one short script for a GPU machine (about 6-8 minutes on an H200). Prints everything;
# the log, a summary and the figures' JSON go under $OUT when it is set, else build/gpu-check/.
#
#   (a) pytest -m gpu tests/test_gpu.py: run, lens, top neurons, knowledge neurons, a causal trace, a slider tick,
#       mining and a ROME edit give the same numbers on CUDA as on the CPU (random weights, default shape)
#   (b) every benchmark in its quick mode, --device cuda --random-weights benchmarks/configs/smollm2-135m.json
#   (c) the issue's GPU figures: the full default corpus mined in bfloat16 and its ratio to plain forwards;
#       explorer payload, causal traces, knowledge neurons and one ROME edit on the default shape and on an
#       8B Llama shape, with peak GPU memory (bench_shapes.py)
#
# A bare GPU machine has neither the default model's package (the tokenizer) nor gensim (the default corpus), and
# only a few tens of MB travel there. So, here, once:
#     bash benchmarks/gpu_check.sh --prepare     # writes build/gpu/ (~8 MB): tokenizer, cleaned corpora, and a
#                                                # data-only gensim stand-in that holds the corpus files
# then on the GPU machine: bash benchmarks/gpu_check.sh   (with build/gpu carried along; it is git-ignored)
#
# Options: --device D (default cuda)  --quick (a 4-layer toy config and small sizes: checks this script end to end
# on a CPU, e.g. --quick --device cpu)  --only a,b,c  --budget SECONDS (default 540: no step starts a limit
# past it)  --python PY (default: .venv/bin/python if present, else python3)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE=$ROOT/build/gpu
DEVICE=cuda QUICK=0 ONLY=a,b,c BUDGET=540 PREPARE=0
PY=${PYTHON:-}
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    *) echo "unknown option $1 (see the head of $0)"; exit 2 ;;
  esac
done
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ $PREPARE = 1 ]; then
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
  BUNDLE=$BUNDLE "$PY" - <<'EOF'
import importlib.util, os, shutil
from pathlib import Path

import ffn_widgets as fw
from ffn_widgets.memories import corpus as C
from ffn_widgets.model.loading import cache_dir, default_model_folder

out = Path(os.environ["BUNDLE"])
(out / "tokenizer").mkdir(parents=True)
for f in default_model_folder().iterdir():  # everything but the weights
    if f.is_file() and not f.name.endswith(".safetensors"):
        shutil.copy(f, out / "tokenizer" / f.name)
for name in C._NAMED:
    fw.load_corpus(name)  # cleaned once, cached as JSON
shutil.copytree(cache_dir() / "corpora", out / "corpora")
spec = importlib.util.find_spec("gensim")
data = out / "site" / "gensim" / "test" / "test_data"
data.mkdir(parents=True)
for name in (C._WIKI_FILE, C._LEE_FILE):  # ffn_widgets keys its cached corpora by these files' sizes
    shutil.copy(Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name, data / name)
(out / "site" / "gensim" / "__init__.py").write_text(
    '"""Data-only stand-in for gensim on a bare GPU machine (benchmarks/gpu_check.sh --prepare): ffn_widgets finds '
    'the corpus files here and reads the cleaned sentences from its cache. No gensim code is here."""\n')
print("prepared", out, "-", sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) // 1024, "KB")
EOF
  exit $?
fi

OUT=${OUT:-$ROOT/build/gpu-check}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
TMP_CACHE=
if [ -d "$BUNDLE" ]; then  # the prepared bundle: tokenizer, corpora and gensim stand-in; a fresh cache
  export FFN_BENCH_TOKENIZER=$BUNDLE/tokenizer PYTHONPATH=$BUNDLE/site${PYTHONPATH:+:$PYTHONPATH}
  TMP_CACHE=$(mktemp -d) && export FFN_WIDGETS_CACHE=$TMP_CACHE
  cp -r "$BUNDLE/corpora" "$FFN_WIDGETS_CACHE/"
fi

CONFIGS=benchmarks/configs
if [ $QUICK = 1 ]; then
  SHAPE=$CONFIGS/tiny-llama.json BIG=$CONFIGS/tiny-llama.json
else
  SHAPE=$CONFIGS/smollm2-135m.json BIG=$CONFIGS/llama-8b-shape.json
fi
M=(--device "$DEVICE" --random-weights "$SHAPE")
START=$SECONDS
FAILED=0

step() {  # step NAME SECONDS COMMAND...: runs under a time limit, capped by what is left of the budget
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - (SECONDS - START)))
  if [ $left -lt 20 ]; then
    echo "=== $name: skipped, budget spent"; printf '%-34s skipped (budget)\n' "$name" >> "$SUMMARY"; return
  fi
  [ $limit -gt $left ] && limit=$left
  echo; echo "=== $name (limit ${limit} s): $*"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@"; rc=$?
  [ $rc = 0 ] || FAILED=$((FAILED + 1))
  echo "=== $name: rc $rc in $((SECONDS - t0)) s"
  printf '%-34s rc %3d %5d s\n' "$name" $rc $((SECONDS - t0)) >> "$SUMMARY"
}
part() { [[ ",$ONLY," == *",$1,"* ]]; }

echo "gpu_check: device $DEVICE, quick $QUICK, parts $ONLY, budget $BUDGET s, python $PY, out $OUT"
command -v nvidia-smi >/dev/null && nvidia-smi -L
"$PY" -c "import sys, torch, transformers; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| transformers', transformers.__version__, '| cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

if part a; then
  TEST_CONFIG=$([ $QUICK = 1 ] && echo "$SHAPE" || echo "")
  step "a: pytest -m gpu" 150 env FFN_TEST_DEVICE="$DEVICE" FFN_TEST_CONFIG="$TEST_CONFIG" \
    "$PY" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider -rs --durations=5
fi

if part b; then
  TOK=$([ $QUICK = 1 ] && echo 4096 || echo 20000)
  step "b: bench_core" 60 "$PY" benchmarks/bench_core.py --repeats 5 "${M[@]}"
  step "b: bench_editing" 90 "$PY" benchmarks/bench_editing.py --repeats 1 --stat-batches 2 --tokens $TOK "${M[@]}"
  step "b: bench_knowledge" 60 "$PY" benchmarks/bench_knowledge.py --repeats 1 "${M[@]}"
  step "b: bench_many_edits" 60 "$PY" benchmarks/bench_many_edits.py --repeats 1 --skip-batch "${M[@]}"
  step "b: bench_mining" 60 "$PY" benchmarks/bench_mining.py --tokens 4096 --repeats 1 "${M[@]}"
  step "b: bench_sliders" 60 "$PY" benchmarks/bench_sliders.py --repeats 5 --no-browser "${M[@]}"
  step "b: bench_tracing" 60 "$PY" benchmarks/bench_tracing.py --quick "${M[@]}"
fi

if part c; then
  if [ $QUICK = 1 ]; then R=1 STATS=4096 BIGSTATS=4096; else R=3 STATS=100000 BIGSTATS=40000; fi
  step "c: full corpus mined, bfloat16" 150 "$PY" benchmarks/bench_mining.py --tokens 30000 --repeats $R \
    --dtypes bfloat16 --skip-card --full bfloat16 "${M[@]}"
  step "c: shapes, default" 120 "$PY" benchmarks/bench_shapes.py --dtype bfloat16 --repeats $R --tokens $STATS \
    --json "$OUT/shapes-default.json" "${M[@]}"
  step "c: shapes, 8B Llama" 240 "$PY" benchmarks/bench_shapes.py --dtype bfloat16 --repeats 2 --tokens $BIGSTATS \
    --json "$OUT/shapes-8b.json" --device "$DEVICE" --random-weights "$BIG"
fi

echo; echo "=== summary ($((SECONDS - START)) s in all; $FAILED failed)"; cat "$SUMMARY"
[ -n "$TMP_CACHE" ] && rm -rf "$TMP_CACHE"
exit $((FAILED > 0))
