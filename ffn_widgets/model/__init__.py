"""The model layer every other subpackage builds on: loading (offline default, any HF causal LM), the one
architecture table, the hook core (captures and interventions), the ``LM`` wrapper, the weights identity
that keys every weights-dependent cache, and cached forwards across transformers versions (``kv``)."""
from . import kv
from .architectures import ARCHITECTURES, Architecture, architecture_for
from .hooks import SITES, Edit, Intervention, hooked, start_at
from .lm import LM, InputError, Run
from .loading import DEFAULT_MODEL, ModelNotFoundError, load_model

__all__ = ["kv", "ARCHITECTURES", "Architecture", "architecture_for", "SITES", "Intervention", "Edit", "hooked", "start_at",
           "LM", "InputError", "Run", "DEFAULT_MODEL", "ModelNotFoundError", "load_model"]
