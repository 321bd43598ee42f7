"""Exercise checkers for the lesson series in ``notebooks/lessons/``.

    fw.lessons.check("3.1", answer)      # prints right or wrong (with a hint) and returns a bool
    fw.lessons.hint("3.1"); fw.lessons.question("3.1")

Every checker computes the right answer here and now from the model in the kernel (the newest loaded model, or
``lm=``), by its own route where it can (plain torch hooks, the weights read directly) rather than through
the analysis the lesson used, so it checks the student and the package alike. Answers are accepted within a
tolerance, or whenever they satisfy the question (exercises that ask for "a prompt such that ...").
A wrong answer gets a hint, never the answer. ``None`` (the lessons' placeholder) only prints the question.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..model import LM, InputError

PROMPT, TARGET = "The Eiffel Tower is located in the city of", " Paris"  # lessons 1, 3 and 4
PATCH = ("The iPod was developed by", "The Kindle was developed by", " Apple")  # lesson 5: clean, corrupted, target
EDIT = {"prompt": PROMPT, "subject": "The Eiffel Tower", "target_true": "Paris", "target_new": "Rome"}  # lesson 6
TOKENS = 8192  # key statistics of the lessons' edits (ROME's reference: 100,000 texts; notebook 04: 100,000 tokens)
NULL_THRESHOLD = 2e-2  # AlphaEdit's null-space threshold (exercise 7.1)


def quick_settings():
    """ROME settings for the lessons' layer sweeps: 4 context prefixes instead of 20, at most 10 steps."""
    from ..editing.rome import RomeSettings

    return RomeSettings(steps=10, prefix_lengths=((5, 4),))


@dataclass(frozen=True)
class Exercise:
    id: str
    question: str
    hint: str
    check: Callable  # (lm, answer, **context) -> (right: bool, what was found: str)


EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, question: str, hint: str):
    def register(fn):
        EXERCISES[id] = Exercise(id, question, hint, fn)
        return fn
    return register


def check(exercise: str, answer, lm: LM | None = None, **context) -> bool:
    """Check ``answer`` to ``exercise`` ("1.1" ...); prints right or wrong with a hint and returns a bool.
    ``context`` names what the exercise is about when the lesson chose it (``neuron=``, ``index=``)."""
    ex = _exercise(exercise)
    if answer is None or answer is Ellipsis:
        print(f"Exercise {ex.id} is not answered yet. {ex.question}")
        return False
    if lm is None:
        from ..model.lm import current_model
        lm = current_model()
    try:
        right, found = ex.check(lm, answer, **context)
    except InputError as e:  # the kernel is not where the exercise needs it (no edit yet, no neuron named)
        right, found = False, f"This cannot be checked yet: {e}."
    except (TypeError, ValueError) as e:  # an answer of the wrong shape: say so, as a wrong answer
        right, found = False, f"That answer could not be read: {e}."
    if right:
        print(f"✅ Exercise {ex.id}: right. {found}".rstrip())
    else:
        print(f"❌ Exercise {ex.id}: not yet. {found}".rstrip() + f"\nHint: {ex.hint}")
    return bool(right)


def hint(exercise: str) -> None:
    print(_exercise(exercise).hint)


def question(exercise: str) -> None:
    print(_exercise(exercise).question)


def _exercise(exercise) -> Exercise:
    key = str(exercise).strip()
    if key not in EXERCISES:
        raise InputError(f"There is no exercise {exercise!r}; the exercises are {', '.join(EXERCISES)}.")
    return EXERCISES[key]


from . import exercises_1_3, exercises_4_7  # noqa: E402,F401  (they register the exercises)
