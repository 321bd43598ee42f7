"""Loading, the architecture table and the hook core."""
from . import kv
from .architectures import ARCHITECTURES, Architecture, architecture_for
from .hooks import SITES, Edit, Intervention, hooked, start_at
from .lm import LM, InputError, Run
from .loading import DEFAULT_MODEL, ModelNotFoundError, load_model

__all__ = ["kv", "ARCHITECTURES", "Architecture", "architecture_for", "SITES", "Intervention", "Edit", "hooked", "start_at",
           "LM", "InputError", "Run", "DEFAULT_MODEL", "ModelNotFoundError", "load_model"]
