"""``LM``: a Hugging Face causal LM with its architecture row, tokenizer helpers and the hook core.

Example::

    lm = fw.load_model()
    run = lm.run("The Eiffel Tower is located in the city of")
    run.activations.shape   # [n_layers, n_tokens, d_mlp]
    with lm.intervene({(12, 345): 0.0}):
        logits = lm.logits("The Eiffel Tower is located in the city of")
"""
from __future__ import annotations

import functools
import itertools
import math
import weakref
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers.pytorch_utils import Conv1D

from . import kv, placement
from .architectures import Architecture, architecture_for
from .errors import InputError
from .hooks import SITES, Intervention, collect, hooked
from .identity import WeightsVersion, fingerprint

_LIVE: "weakref.WeakValueDictionary[int, LM]" = weakref.WeakValueDictionary()  # every LM of this process
_ON_NEW: list = []
_SERIALS = itertools.count(1)


def live_models() -> list["LM"]:
    """The models loaded in this process that are still referenced, oldest first (the side panel lists them)."""
    return [lm for _, lm in sorted(_LIVE.items())]


def current_model() -> "LM":
    """The newest live model: what the JupyterLab commands run on, so that they need no variable name."""
    models = live_models()
    if not models:
        raise InputError("No model is loaded in this kernel: run `import ffn_widgets as fw; lm = fw.load_model()` "
                         "(or fw.load_model(\"<name or path>\")) first.")
    return models[-1]


def on_new_model(callback) -> None:
    """Call ``callback(lm)`` whenever a model is wrapped (the side panel's model list follows)."""
    _ON_NEW.append(callback)


@dataclass
class Run:
    """Everything one forward pass of one prompt computed. Shapes: ``[layer, pos, ...]``, float32, on the CPU
    (a record to read and plot, whatever device the model computes on).

    ``resid_mid`` is the residual stream without this layer's MLP (``resid_post - mlp_out``): for
    sequential blocks, the state between attention and MLP.
    """

    prompt: str
    input_ids: torch.Tensor  # [pos]
    tokens: list[str]
    logits: torch.Tensor  # [pos, vocab]
    activations: torch.Tensor | None  # [layer, pos, d_mlp]
    resid_pre: torch.Tensor | None  # [layer, pos, d_model]
    attn_out: torch.Tensor | None
    mlp_out: torch.Tensor | None
    resid_post: torch.Tensor | None
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    @property
    def resid_mid(self) -> torch.Tensor:
        return self.resid_post - self.mlp_out

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


class LM:
    """A loaded model plus what the analyses need to read it. Construct with :func:`load_model`."""

    def __init__(self, model, tokenizer, name: str = "model"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.config = model.config
        self.arch: Architecture = architecture_for(model.config)
        self.blocks = model.get_submodule(self.arch.layers)
        self.n_layers = len(self.blocks)
        self.d_mlp = self._weight(self.arch.down, 0).shape[1]
        self.d_model = self._weight(self.arch.down, 0).shape[0]
        self.n_ctx = _context_length(model.config)
        self._token_text: dict[int, str] = {}
        self._weights = WeightsVersion(model)
        self._memo: dict = {}
        self._edit_log = None
        self._interventions, self._watch = 0, None
        self.block_output_arity, self.flat_mlp = self._probe_block_output()
        self.recipe: dict | None = None  # how load_model loaded it (a cluster worker loads it the same way)
        self.serial = next(_SERIALS)  # names the model in the side panel
        _LIVE[self.serial] = self
        for callback in list(_ON_NEW):
            callback(self)

    # ---- weights identity ----------------------------------------------------------------
    @property
    def weights_version(self) -> int:
        """Changes whenever any parameter changes: an edit, a write through ``.data``, ``load_state_dict``,
        ``.to(dtype)``. Cheap (no weights read); every cache that depends on weights keys on it."""
        return self._weights.read()

    @property
    def state_version(self) -> int:
        """What a view records as the model it describes: moves with the weights and when an ``intervene``
        block starts or ends (both counts only grow, so their sum moves whenever either does)."""
        return self.weights_version + self._interventions

    @property
    def watch(self):
        """The views' notices of state changes (:mod:`ffn_widgets.model.watch`)."""
        if self._watch is None:
            from .watch import StateWatch

            self._watch = StateWatch(self)
        return self._watch

    def memo(self, key, compute):
        """``compute()``, remembered under ``key`` until the weights change (the one cache of every concept
        that depends on weights: value projections, the embedding noise scale, the fingerprint...)."""
        version = self.weights_version
        if self._memo.get("__version__") != version:
            self._memo = {"__version__": version}
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def forget(self) -> None:
        """Drop everything :meth:`memo` remembers (benchmarks time the cold paths)."""
        self._memo = {}

    @property
    def fingerprint(self) -> str:
        """A hash of the weights' content, the same in every process: keys caches on disk."""
        return self.memo("fingerprint", lambda: fingerprint(self.model))

    @property
    def edits(self):
        """The edit log (:class:`~ffn_widgets.editing.log.EditLog`): every weight edit in order, with
        undo, reset, save and load. Created on first use (the editing layer is imported only then)."""
        if self._edit_log is None:
            from ..editing.log import EditLog  # the one upward reference: the log belongs to the model

            self._edit_log = EditLog(self)
        return self._edit_log

    # ---- modules and weights -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where input ids go: the device the embeddings compute on (for a split model, the first layers')."""
        return placement.execution_device(self.model.get_input_embeddings())

    def device_of(self, module: torch.nn.Module) -> torch.device:
        """Where ``module`` computes: tensors that meet its inputs or outputs are created there."""
        return placement.execution_device(module)

    @property
    def is_split(self) -> bool:
        """True when accelerate spread the model over devices or offloads some of its weights."""
        return placement.is_split(self.model)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def site_module(self, site: str, layer: int) -> torch.nn.Module:
        block = self.blocks[layer]
        path = {"resid_pre": None, "resid_post": None, "attn_out": self.arch.attn_output,
                "mlp_out": self.arch.mlp_add, "neurons": self.arch.down}[site]
        return block if path is None else block.get_submodule(path)

    def _weight(self, path: str, layer: int) -> torch.Tensor:
        """A projection's weight as ``[out, in]`` whatever the layer type (GPT-2's Conv1D is transposed)."""
        return self.oriented_weight(self.blocks[layer].get_submodule(path))

    @staticmethod
    def oriented_weight(module: torch.nn.Module, writable: bool = False) -> torch.Tensor:
        """``module``'s weight as ``[out, in]`` (Conv1D transposed), read where it is kept (offloaded ones
        too); with ``writable`` a tensor whose in-place writes the model's forwards see (weight edits)."""
        w = (placement.writable if writable else placement.read)(module)
        return w.T if isinstance(module, Conv1D) else w

    def values(self, layer: int) -> torch.Tensor:
        """Value vectors of a layer, ``[d_mlp, d_model]``: row i is what neuron i writes per unit m_i."""
        self.check_layer(layer)
        return self._weight(self.arch.down, layer).T

    def keys(self, layer: int) -> torch.Tensor:
        """Key vectors (up projection rows), ``[d_mlp, d_model]``; gated MLPs also have :meth:`gates`."""
        self.check_layer(layer)
        return self._weight(self.arch.up, layer)

    def gates(self, layer: int) -> torch.Tensor | None:
        self.check_layer(layer)
        return None if self.arch.gate is None else self._weight(self.arch.gate, layer)

    @property
    def unembed_module(self) -> torch.nn.Module:
        return self.model.get_submodule(self.arch.unembed)

    @property
    def final_norm(self) -> torch.nn.Module:
        return self.model.get_submodule(self.arch.final_norm)

    @property
    def W_U(self) -> torch.Tensor:
        """Unembedding ``[vocab, d_model]``."""
        return placement.read(self.unembed_module)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits of residual states ``[..., d_model]`` through the final norm and unembedding
        (with the model's final logit soft-capping where it has one) — the logit lens. Computed where the
        final norm lives; returned on ``resid``'s device."""
        with torch.no_grad():
            x = resid.to(self.device_of(self.final_norm), self.dtype)
            logits = self.unembed_module(self.final_norm(x)).float().to(resid.device)
        cap = getattr(self.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def norm_scale(self, resid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Linearise the final norm at ``resid`` ``[..., d_model]``: returns (gain ``[d_model]``,
        1/σ ``[...]``, centres). ``norm(resid + δ) - norm(resid) ≈ gain * centred(δ) / σ`` with σ frozen.
        Both on ``resid``'s device."""
        norm = self.final_norm
        resid = resid.float()
        centres = isinstance(norm, torch.nn.LayerNorm)
        eps = getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", None) or 1e-5
        x = resid - resid.mean(-1, keepdim=True) if centres else resid
        inv_sigma = torch.rsqrt(x.pow(2).mean(-1) + eps)
        probe = torch.ones(self.d_model, dtype=self.dtype, device=self.device_of(norm))
        probe[1::2] = -1  # mean 0, rms 1: norm(probe) = gain * probe + bias
        with torch.no_grad():
            gain = ((norm(probe) - norm(-probe)) / (2 * probe)).float()
        return gain.to(resid.device), inv_sigma, centres

    # ---- input checks --------------------------------------------------------------------
    def check_layer(self, layer: int) -> int:
        if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < self.n_layers:
            raise InputError(f"layer must be an integer in 0..{self.n_layers - 1}, got {layer!r}.")
        return layer

    def check_neuron(self, neuron: int) -> int:
        if not isinstance(neuron, int) or isinstance(neuron, bool) or not 0 <= neuron < self.d_mlp:
            raise InputError(f"neuron must be an integer in 0..{self.d_mlp - 1}, got {neuron!r}.")
        return neuron

    def check_unit(self, unit) -> tuple[int, int]:
        """A ``(layer, neuron)`` pair, checked (messages say what is allowed)."""
        if not (isinstance(unit, tuple) and len(unit) == 2):
            raise InputError(f"Neurons are given as (layer, neuron) pairs, got {unit!r}.")
        return self.check_layer(unit[0]), self.check_neuron(unit[1])

    def find_subject(self, prompt: str, subject: str, after: int = 0) -> tuple[int, int]:
        """Token range ``[start, stop)`` of the first occurrence of ``subject`` in ``prompt`` at or after
        character ``after`` (edits read the subject after a prefix that may mention it too)."""
        if not isinstance(subject, str) or not subject.strip():
            raise InputError("The subject is empty: give the words of the prompt it names, e.g. 'The Eiffel Tower'.")
        at = prompt.find(subject, after)
        if at < 0:
            low = prompt.lower().find(subject.lower(), after)
            hint = f" (it does with other capitals: {prompt[low:low + len(subject)]!r})" if low >= 0 else ""
            raise InputError(f"The subject {subject!r} does not occur in the prompt {prompt[after:]!r}{hint}; "
                             "give it exactly as written in the prompt.")
        stop_char = at + len(subject)
        inside = [i for i, (a, b) in enumerate(self._char_spans(prompt)) if a < stop_char and b > at]
        if not inside:
            raise InputError(f"The subject {subject!r} covers no token of the prompt.")
        return inside[0], inside[-1] + 1

    def _char_spans(self, prompt: str) -> list[tuple[int, int]]:
        tok = self.tokenizer
        if getattr(tok, "is_fast", False):
            return [tuple(s) for s in tok(prompt, return_offsets_mapping=True)["offset_mapping"]]
        ids = self.encode(prompt).tolist()  # slow tokenizers: lengths of decoded prefixes
        ends = [len(tok.decode(ids[:i + 1])) for i in range(len(ids))]
        return [(a, b) for a, b in zip([0] + ends[:-1], ends)]

    # ---- tokens --------------------------------------------------------------------------
    def encode(self, prompt: str) -> torch.Tensor:
        """Token ids ``[pos]`` of a prompt, with the model's own special tokens; checks emptiness and length."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("The prompt is empty: type some text for the model to read.")
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"][0]
        if len(ids) > self.n_ctx:
            raise InputError(f"The prompt is {len(ids)} tokens long; this model reads at most {self.n_ctx}.")
        return ids.to(self.device)

    @functools.cached_property
    def stop_ids(self) -> frozenset[int]:
        """Tokens that end a continuation: every end-of-sequence id the model or tokenizer names (chat models
        end a turn with one, e.g. ``<|im_end|>``) and the tokenizer's other special tokens, which are not text."""
        ids = set(self.tokenizer.all_special_ids)
        for source in (self.config, getattr(self.model, "generation_config", None), self.tokenizer):
            eos = getattr(source, "eos_token_id", None)
            ids.update(eos if isinstance(eos, (list, tuple, set)) else [] if eos is None else [eos])
        return frozenset(int(i) for i in ids)

    def resolve_target(self, target: str | int | None, logits: torch.Tensor | None = None) -> tuple[int, str]:
        """The target token as ``(id, text)``: a given text (its first token) or id, or with ``None``/``""``
        the model's own top prediction from ``logits`` ``[vocab]``."""
        if target is None or (isinstance(target, str) and not target):
            if logits is None:
                raise InputError("Give a target, e.g. ' Paris' (with its leading space).")
            tid = int(logits.argmax())
        else:
            tid = self.target_ids(target)[0]
        return tid, self.token_strings([tid])[0]

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Each token as the text it stands for (not the tokenizer's internal symbols)."""
        out = []
        for i in ids:
            i = int(i)
            if i not in self._token_text:
                text = self.tokenizer.decode([i])
                if "\ufffd" in text:  # part of a multi-byte character: show its bytes, not "�"
                    raw = _token_bytes(self.tokenizer.convert_ids_to_tokens(i))
                    text = raw.decode("utf-8", errors="backslashreplace") if raw is not None else text
                self._token_text[i] = text
            out.append(self._token_text[i])
        return out

    @staticmethod
    def continuation(prompt, target):
        """The one rule for a target text after a prompt (every function that takes a target applies it): a target
        that starts with a letter or digit after a prompt that ends with one gets the space it lacks, as
        :func:`ffn_widgets.fact_target` does ("of" + "Rome" would read "ofRome"). Scripts written without
        spaces (CJK, Thai...) and every other target are kept as given; ids pass through."""
        if isinstance(target, str) and target and isinstance(prompt, str) and prompt:
            glued = _spaced_script(prompt[-1]) and _spaced_script(target[0])
            return " " + target if glued else target
        return target

    def target_ids(self, target: str | int) -> list[int]:
        """Token ids of a target continuation. Multi-token targets are allowed; analyses that need one
        token use the first (``p(first token)``) and say so. A leading space matters: " Paris"."""
        if isinstance(target, int) and not isinstance(target, bool):
            if not 0 <= target < self.W_U.shape[0]:
                raise InputError(f"target token id must be in 0..{self.W_U.shape[0] - 1}, got {target}.")
            return [target]
        if not isinstance(target, str) or not target:
            raise InputError("The target is empty: give the text the model should predict, e.g. ' Paris'.")
        ids = self.tokenizer(target, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InputError(f"The target {target!r} tokenizes to nothing; give visible text such as ' Paris'.")
        return list(ids)

    # ---- running -------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, last_only: bool = False, **kwargs) -> torch.Tensor:
        """Plain HF forward of ``[batch, pos]`` ids, float32 logits; ``last_only`` keeps one position."""
        out = kv.forward(self.model, input_ids, use_cache=False, last_only=last_only, **kwargs).logits.float()
        return out[:, -1:] if last_only else out

    def run(self, prompt: str, capture: Iterable[str] = ("neurons", "resid_pre", "attn_out", "mlp_out", "resid_post"),
            edits: Iterable[Intervention] = ()) -> Run:
        """One forward pass capturing the given sites at every layer (all by default)."""
        ids, version = self.encode(prompt), self.state_version
        capture = tuple(capture)
        for site in capture:
            if site not in SITES:
                raise InputError(f"Unknown site {site!r}; sites are {', '.join(SITES)}.")
        layers = range(self.n_layers)
        with torch.no_grad(), hooked(self, [(s, l) for s in capture for l in layers], edits) as store:
            logits = self.forward(ids[None])[0]
        get = lambda s: collect(store, s, layers).float().cpu() if s in capture else None  # noqa: E731
        return Run(prompt, ids.cpu(), self.token_strings(ids), logits.cpu(), get("neurons"),
                   get("resid_pre"), get("attn_out"), get("mlp_out"), get("resid_post"), version)

    def logits(self, prompt: str) -> torch.Tensor:
        """``[pos, vocab]`` float32 logits of a prompt (inside :meth:`intervene`, the edited model's)."""
        with torch.no_grad():
            return self.forward(self.encode(prompt)[None])[0]

    @contextmanager
    def intervene(self, spec: Mapping[tuple[int, int], float] | Iterable[Intervention], positions=None):
        """Scale neurons while the ``with`` body runs: ``{(layer, neuron): scale}`` (0 suppresses,
        2 doubles), at all positions or the given ones; or any list of :class:`Intervention`."""
        edits = list(self._edits_from(spec, positions))
        with hooked(self, (), edits):
            self._interventions += 1
            try:
                yield self
            finally:
                self._interventions += 1

    def _edits_from(self, spec, positions):
        if isinstance(spec, Mapping):
            by_layer: dict[tuple[int, float], list[int]] = {}
            for key, scale in spec.items():
                layer, neuron = self.check_unit(key)
                try:
                    scale = float(scale)
                except (TypeError, ValueError):
                    raise InputError(f"The scale of L{layer}.N{neuron} must be a number, got {scale!r}.") from None
                if not math.isfinite(scale):
                    raise InputError(f"The scale of L{layer}.N{neuron} must be finite (0 suppresses, 1 leaves the "
                                     f"neuron, 2 doubles it), got {scale!r}.")
                by_layer.setdefault((layer, scale), []).append(neuron)
            for (layer, scale), neurons in by_layer.items():
                yield Intervention("neurons", layer, "scale", scale, index=neurons, positions=positions)
        else:
            yield from spec

    def _probe_block_output(self) -> tuple[int, bool]:
        """How a block returns its hidden state (0 = a tensor, n = a tuple of n; needed by replays), and
        whether the MLP runs on flattened ``[batch*pos, d]`` inputs (OPT), which the hooks then reshape."""
        seen = {}

        def record(module, args, out):
            seen["n"] = len(out) if isinstance(out, tuple) else 0

        def record_down(module, args):
            seen["flat"] = args[0].dim() == 2

        handles = [self.blocks[0].register_forward_hook(record),
                   self.site_module("neurons", 0).register_forward_pre_hook(record_down)]
        try:
            with torch.no_grad():
                self.model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=self.device), use_cache=False)
        finally:
            for h in handles:
                h.remove()
        return seen["n"], seen["flat"]

    def __repr__(self):
        return (f"LM({self.name!r}, {self.config.model_type}, layers={self.n_layers}, d_model={self.d_model}, "
                f"d_mlp={self.d_mlp}, dtype={self.dtype})")


def _context_length(config) -> int:
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def _spaced_script(ch: str) -> bool:
    """A letter or digit of a script that puts spaces between words (below the CJK blocks)."""
    return ch.isalnum() and ord(ch) < 0x2E80


@functools.lru_cache(maxsize=1)
def _byte_symbols() -> dict[str, int]:
    """Byte-level BPE's alphabet (GPT-2, Llama 3, SmolLM...): each byte is one printable character; bytes that
    are printable Latin-1 stand for themselves, the others for 256 + their rank."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{chr(b): b for b in printable}, **{chr(256 + n): b for n, b in enumerate(others)}}


def _token_bytes(token: str | None) -> bytes | None:
    """The raw bytes of one vocabulary entry: byte-level BPE symbols, or SentencePiece's ``<0xE2>``; else None."""
    if not token:
        return None
    if token.startswith("<0x") and token.endswith(">") and len(token) == 6:
        return bytes([int(token[3:5], 16)])
    table = _byte_symbols()
    if all(ch in table for ch in token):
        return bytes(table[ch] for ch in token)
    return None
