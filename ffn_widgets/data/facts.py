"""Facts the default model knows (top-1), for tests, demos and lessons.

Each fact: ``subject``, ``prompt`` (contains the subject), ``target_true``, ``target_new`` (a
counterfactual for editing), ``paraphrases`` and ``neighborhood`` prompts. Objects are stored without the
leading space; :func:`target` adds the space the tokenizer expects after a prompt that ends in a word.
"""
from __future__ import annotations

import json
from importlib.resources import files


def load_facts(relation: str | None = None, path=None) -> list[dict]:
    """The dev facts (or those of a JSON-lines file at ``path``), optionally of one relation."""
    if path is None:
        text = files("ffn_widgets.data").joinpath("facts.jsonl").read_text(encoding="utf-8")
    else:
        from pathlib import Path

        from ..model import InputError

        if not Path(path).is_file():
            raise InputError(f"No facts file at {path}.")
        text = Path(path).read_text(encoding="utf-8")
    facts = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [f for f in facts if relation is None or f["relation"] == relation]


def target(obj: str) -> str:
    """The continuation text for an object: ``"Paris"`` -> ``" Paris"``."""
    return obj if obj.startswith(" ") else " " + obj


def fact_target(fact: dict, key: str = "target_true") -> str:
    """A fact's object as the continuation of its prompt (``" Paris"``), ready for ``target=`` arguments."""
    return target(fact[key])


def edit_facts(facts) -> list[dict]:
    """Facts for an edit job: ``None`` (the dev facts), a JSON-lines path, or dicts; each must name a prompt, a subject
    and both objects."""
    from ..model import InputError

    if facts is None:
        return load_facts()
    facts = load_facts(path=facts) if isinstance(facts, str) or hasattr(facts, "__fspath__") else list(facts)
    if not facts:
        raise InputError("No facts given: pass dicts with prompt, subject, target_true, target_new.")
    for f in facts:
        missing = [k for k in ("prompt", "subject", "target_true", "target_new") if not f.get(k)]
        if missing:
            raise InputError(f"The fact {f.get('prompt', f)!r} lacks {', '.join(missing)}.")
    return facts
