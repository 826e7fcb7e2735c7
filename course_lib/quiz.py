"""Quizzes: question banks (data files) and a pure grader.

Each notebook has a bank, ``data/quizzes/NN.json`` (schema: docs/QUIZ_SCHEMA.md). Three kinds of
question:

- ``multiple_choice`` (exactly one option is right) and ``many_choice`` (one or more): every
  option carries ``correct`` and ``feedback`` saying why it is right or wrong;
- ``numeric``: the answer is never typed into the bank. It is a call of a course function,
  ``{"fn": "perf.tokens_per_second", "args": {...}}``, made when the question is graded;
- *measured* numeric questions are numeric questions whose args name a value of the learner's
  own machine, ``"$bandwidth"``, taken from the ``context`` mapping passed at run time.

``grade(question, answer, context)`` is pure and never raises on a learner's answer: empty or
malformed input (``"1e"``, ``"abc"``, ``"1,5"``) comes back as a ``Result`` with status
``"invalid"`` and a friendly message. ``Quiz`` keeps the only state (the latest result of each
question) and ``quiz_widget`` only displays it.

Instructors: ``answer_key("01")`` (or ``python -m course_lib quiz --answers 01``) prints a
notebook's answers and explanations as Markdown.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from numbers import Real

from . import hardware as _hardware
from . import perf as _perf
from . import precision as _precision

__all__ = [
    "NOTEBOOKS",
    "QUESTION_TYPES",
    "SCHEMA_VERSION",
    "UNITS",
    "AnswerError",
    "MissingContext",
    "Mistake",
    "Option",
    "Question",
    "Quiz",
    "Result",
    "Score",
    "answer_key",
    "format_number",
    "grade",
    "load_bank",
    "normalize_notebook_id",
    "notebook_ids",
    "parse_bank",
    "parse_number",
]

SCHEMA_VERSION = 1
QUESTION_TYPES = ("multiple_choice", "many_choice", "numeric")

# notebook id -> notebook file name (without .ipynb); a bank exists for each
NOTEBOOKS: dict[str, str] = {
    "00": "00_start_here",
    "01": "01_the_bottleneck",
    "02": "02_prefill_vs_decode",
    "03": "03_roofline",
    "04": "04_parallelism_limits",
}

# Display units -> their size in SI units. Course functions return SI values (bytes, seconds,
# bytes/s, FLOP/s); a numeric question whose ``units`` is listed here is asked and graded in that
# unit (``"ms"``: seconds / 1e-3). Any other unit ("tokens/s", "FLOP/byte", "devices") is taken
# as it is.
UNITS: dict[str, float] = {
    "B": 1.0, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
    "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30,
    "B/s": 1.0, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12,
    "FLOP": 1.0, "GFLOP": 1e9, "TFLOP": 1e12,
    "FLOP/s": 1.0, "GFLOP/s": 1e9, "TFLOP/s": 1e12,
    "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6,
    "thousand": 1e3, "million": 1e6, "billion": 1e9,
    "%": 1e-2,
}

# Course functions a bank may call, by the name used in the bank: every public function of
# course_lib.perf (perf.__all__) except the two that return tables.
_NOT_NUMERIC = {"decode_table", "decode_components"}
FUNCTIONS: dict[str, object] = {
    f"perf.{name}": getattr(_perf, name)
    for name in _perf.__all__
    if name not in _NOT_NUMERIC and inspect.isfunction(getattr(_perf, name, None))
}



def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    return float(value)


def _div(a, b) -> float:
    """a / b (for measured questions: a rate from a count and a measured time)."""
    a, b = _finite("a", a), _finite("b", b)
    if b == 0:
        raise ValueError("b=0: cannot divide by zero")
    return a / b


def _mul(a, b) -> float:
    """a * b."""
    return _finite("a", a) * _finite("b", b)


# Plain arithmetic on measured values, for the few questions no perf formula covers.
FUNCTIONS["math.div"] = _div
FUNCTIONS["math.mul"] = _mul

# What a learner may type after a number besides the question's own unit.
_UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "×": ("x", "times"),
    "tokens/s": ("tok/s", "tokens per second", "token/s"),
    "tokens": ("token",),
    "ms": ("milliseconds", "millisecond"),
    "FLOP/byte": ("FLOP/B", "FLOPs/byte", "flops/byte"),
    "GPUs": ("GPU",),
}

_HARDWARE_ATTRS = ("bandwidth", "memory")
_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]+))?\}")


# ============================================================================ errors
class AnswerError(ValueError):
    """A learner's answer that cannot be read; ``str(err)`` is a friendly message for them."""


class MissingContext(LookupError):
    """A measured question needs a value of the learner's machine that the context lacks."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


# ============================================================================ data
@dataclass(frozen=True)
class Option:
    """One choice of a multiple/many-choice question."""

    text: str
    correct: bool
    feedback: str


@dataclass(frozen=True)
class Mistake:
    """A common wrong numeric answer (computed like the answer) with its own feedback."""

    answer: Mapping
    feedback: str


@dataclass(frozen=True, eq=False)
class Question:
    """One question of a bank. Value specs (``answer``, ``given``) stay as in the bank and are
    resolved when needed, so a measured question can be built before anything is measured."""

    id: str
    type: str
    question: str
    explanation: str
    options: tuple[Option, ...] = ()
    answer: Mapping | None = None
    tolerance: Mapping = field(default_factory=dict)
    units: str = ""
    feedback: Mapping = field(default_factory=dict)
    mistakes: tuple[Mistake, ...] = ()
    given: Mapping = field(default_factory=dict)
    verify: tuple[Mapping, ...] = ()

    @property
    def is_numeric(self) -> bool:
        return self.type == "numeric"

    @property
    def context_keys(self) -> tuple[str, ...]:
        """Names of the learner's measurements this question needs (empty: not measured)."""
        keys: list[str] = []
        for spec in [self.answer, *self.given.values(), *(m.answer for m in self.mistakes)]:
            for key in _refs(spec):
                if key not in keys:
                    keys.append(key)
        return tuple(keys)

    @property
    def measured(self) -> bool:
        return bool(self.context_keys)

    @property
    def correct_indices(self) -> tuple[int, ...]:
        return tuple(i for i, option in enumerate(self.options) if option.correct)

    def expected(self, context: Mapping | None = None) -> float:
        """The right answer in the question's display units; MissingContext if a measured
        value is missing."""
        return _resolve_number(self.answer, _as_context(context)) / _unit_scale(self.units)

    def accepted_range(self, context: Mapping | None = None) -> tuple[float, float]:
        """The smallest and largest answers graded correct."""
        expected = self.expected(context)
        width = _tolerance_width(self.tolerance, expected)
        return expected - width, expected + width

    def text(self, context: Mapping | None = None) -> str:
        """The question with its ``{placeholders}`` filled in (unmeasured values are named)."""
        return _render(self, _as_context(context))


@dataclass(frozen=True)
class Result:
    """What ``grade`` says about one answer.

    status: ``"correct"``, ``"incorrect"``, ``"invalid"`` (unreadable or empty answer: not an
    attempt) or ``"needs_context"`` (a measured question before the measurement was run).
    ``message`` is the whole text for the learner; ``headline`` and ``details`` are its parts.
    """

    correct: bool
    status: str
    headline: str
    details: tuple[str, ...] = ()
    expected: float | None = None

    @property
    def attempted(self) -> bool:
        """True for a graded attempt (right or wrong); False for invalid input or no context."""
        return self.status in ("correct", "incorrect")

    @property
    def message(self) -> str:
        return "\n".join([self.headline, *self.details])


@dataclass(frozen=True)
class Score:
    correct: int
    attempted: int
    total: int
    revealed: int

    def __str__(self) -> str:
        text = f"Score: {self.correct} of {self.total} correct"
        if self.attempted < self.total:
            text += f" ({self.total - self.attempted} not tried yet)"
        if self.revealed:
            text += f"; answer shown for {self.revealed}"
        return text + "."


@dataclass(eq=False)
class Quiz:
    """A notebook's bank plus the learner's progress (the latest graded result per question)."""

    notebook: str
    title: str
    questions: tuple[Question, ...]
    source: str = ""
    results: dict[str, Result] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    revealed: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self):
        return iter(self.questions)

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        known = ", ".join(q.id for q in self.questions)
        raise ValueError(f"question_id={question_id!r} is not in quiz {self.notebook}; known: {known}")

    def check(self, question_id: str, answer, context: Mapping | None = None) -> Result:
        """Grade an answer and remember it if it was a real attempt."""
        result = grade(self.question(question_id), answer, context)
        if result.attempted:
            self.results[question_id] = result
            self.attempts[question_id] = self.attempts.get(question_id, 0) + 1
        return result

    def reveal(self, question_id: str, context: Mapping | None = None) -> str:
        """The answer and explanation of one question (Markdown); counted in the score line."""
        q = self.question(question_id)
        self.revealed.add(question_id)
        return _answer_text(q, _as_context(context))

    def score(self) -> Score:
        return Score(
            correct=sum(r.correct for r in self.results.values()),
            attempted=len(self.results),
            total=len(self.questions),
            revealed=len(self.revealed),
        )

    def reset(self) -> None:
        """Forget every attempt (start the quiz again)."""
        self.results.clear()
        self.attempts.clear()
        self.revealed.clear()

    def text(self, context: Mapping | None = None) -> str:
        """The whole quiz as plain text: what a front end without widgets shows."""
        ctx = _as_context(context)
        lines = [f"Quiz {self.notebook}: {self.title} ({len(self.questions)} questions)", ""]
        for number, q in enumerate(self.questions, 1):
            lines.append(f"Q{number}. {_render(q, ctx)}")
            for letter, option in zip(_LETTERS, q.options):
                lines.append(f"   {letter}) {option.text}")
            if q.is_numeric:
                lines.append(f"   Answer in {q.units}." if q.units else "   Answer with a number.")
            lines.append("")
        lines.append("(Interactive checking needs ipywidgets; the answers are in "
                     f"`python -m course_lib quiz --answers {self.notebook}`.)")
        return "\n".join(lines)

    def answer_key(self, context: Mapping | None = None) -> str:
        """Every question with its answer and explanation, as Markdown (for instructors)."""
        ctx = _as_context(context)
        out = [f"# Answer key, quiz {self.notebook}: {self.title}", ""]
        for number, q in enumerate(self.questions, 1):
            kind = {"multiple_choice": "one answer", "many_choice": "one or more answers",
                    "numeric": "numeric"}[q.type]
            if q.measured:
                kind += ", measured on the learner's machine"
            out.append(f"## Q{number} `{q.id}` ({kind})")
            out.append("")
            out.append(_render(q, ctx))
            out.append("")
            for letter, option in zip(_LETTERS, q.options):
                mark = "**right**" if option.correct else "wrong"
                out.append(f"- {letter}) {option.text} — {mark}: {option.feedback}")
            if q.options:
                out.append("")
            out.append(_answer_text(q, ctx))
            out.append("")
        return "\n".join(out).rstrip() + "\n"


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# ============================================================================ numbers
_NUMBER = re.compile(r"[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+)?")
_LEADING_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def parse_number(text, units: str = "") -> float:
    """Read a learner's number, or raise AnswerError with a friendly message.

    Accepted: ``143``, ``-2.5``, ``.5``, ``1.4e2``, ``1E-3``, ``1_000`` (Python's digit groups),
    an optional leading ``~`` or ``≈``, the Unicode minus sign, surrounding spaces, and the
    question's own unit after the number (``"115 tokens/s"`` when ``units="tokens/s"``).
    Refused, with a message saying what to type instead: empty input, words, a lone ``1e``,
    ``inf``/``nan``, spaces inside a number, and every comma — ``1,5`` means 1.5 in much of Europe
    and ``1,000`` means 1000 in English, so guessing would grade some learners wrongly.
    """
    if isinstance(text, bool):
        raise AnswerError("Type a number, for example 143 or 1.4e2.")
    if isinstance(text, Real):
        value = float(text)
        if not math.isfinite(value):
            raise AnswerError("Please type a finite number.")
        return value
    if text is None:
        raise AnswerError("Type a number first, for example 143 or 1.4e2.")
    if not isinstance(text, str):
        raise AnswerError("Type a number, for example 143 or 1.4e2.")
    s = text.strip().replace("\u2212", "-").replace("\u00a0", " ")
    s = s.lstrip("~≈").strip()
    if not s:
        raise AnswerError("Type a number first, for example 143 or 1.4e2.")
    for unit in sorted((units, *_UNIT_ALIASES.get(units, ())) if units else (), key=len, reverse=True):
        if s.lower().endswith(unit.lower()) and len(s) > len(unit):
            s = s[: -len(unit)].rstrip()
            break
    if "," in s:
        raise AnswerError(
            "Please type the number without commas: a dot for decimals (2.5) and no thousands "
            "separator (1000, or 1e3).")
    if _NUMBER.fullmatch(s):
        value = float(s)
        if not math.isfinite(value):
            raise AnswerError("That number is too large to be a sensible answer; check the exponent.")
        return value
    raise AnswerError(_diagnose(s, units))


def _diagnose(s: str, units: str) -> str:
    shown = s if len(s) <= 30 else s[:27] + "..."
    if re.fullmatch(r"[+-]?[\d.]+[eE][+-]?", s):
        return f"“{shown}” is missing its exponent: write 1e3 for 1000, or 2.5e-3 for 0.0025."
    if re.fullmatch(r"[+-]?[\d.]+\s*[x×*]\s*10\s*\^?\s*[+-]?\d+", s):
        return "Write powers of ten with an e: 1.4e2 means 1.4 × 10^2."
    if re.fullmatch(r"[+-]?[\d.]+(?:\s+[\d.]+)+", s):
        return "Please remove the spaces inside the number (type 1000, not 1 000)."
    leading = _LEADING_NUMBER.match(s)
    rest = s[leading.end():].lstrip() if leading else ""
    if rest and (rest[0].isalpha() or rest[0] in "%/°"):
        unit = f" (the answer is in {units})" if units else ""
        return f"Type just the number, without units or words{unit}: for example {leading.group(0)}."
    return f"“{shown}” is not a number I can read. Type digits, such as 143, 0.5 or 1.4e2."


def format_number(x: float, digits: int = 3) -> str:
    """A number for people: 3 significant figures, whole numbers in full below ten million,
    e-notation for very large or small ones (``115``, ``3.36``, ``524288``, ``1.3e10``)."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    ax = abs(x)
    if 1e-3 <= ax < 1e7:
        if x == int(x):
            return str(int(x))
        decimals = max(digits - 1 - math.floor(math.log10(ax)), 0)
        text = f"{x:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _with_units(value: float, units: str) -> str:
    if not units:
        return format_number(value)
    return f"{format_number(value)}{'' if units == '%' else ' '}{units}"


def _unit_scale(units: str) -> float:
    return UNITS.get(units, 1.0)


def _tolerance_width(tolerance: Mapping, expected: float) -> float:
    return max(tolerance.get("abs", 0.0), tolerance.get("rel", 0.0) * abs(expected))


def _within(value: float, expected: float, tolerance: Mapping) -> bool:
    return abs(value - expected) <= _tolerance_width(tolerance, expected) * (1 + 1e-12)


# ============================================================================ value specs
def _as_context(context) -> Mapping:
    if context is None:
        return {}
    if isinstance(context, Mapping):
        return context
    raise TypeError(f"context={context!r} must be a dict of measurements (keys in docs/QUIZ_SCHEMA.md) "
                    "or None")


def _refs(spec) -> list[str]:
    """Context keys ("$name") a value spec uses."""
    if isinstance(spec, str) and spec.startswith("$"):
        return [spec[1:]]
    if isinstance(spec, Mapping):
        return [key for value in spec.values() for key in _refs(value)]
    return []


def _resolve(spec, context: Mapping):
    """A value spec -> a value: numbers and strings as they are, "$key" from the context,
    {"hardware": ..., "attr"/"peak_flops": ...} from the catalogue, {"fn", "args"} by a call."""
    if isinstance(spec, str):
        if spec.startswith("$"):
            key = spec[1:]
            value = context.get(key)
            if value is None:
                raise MissingContext(key)
            return value
        return spec
    if isinstance(spec, (bool, Real)):
        return spec
    if isinstance(spec, Mapping):
        if "hardware" in spec:
            device = _hardware.get(spec["hardware"])
            if "attr" in spec:
                return getattr(device, spec["attr"])
            return device.peak_flops(spec["peak_flops"])
        if "fn" in spec:
            fn = FUNCTIONS[spec["fn"]]
            args = {name: _resolve(value, context) for name, value in spec.get("args", {}).items()}
            return fn(**args)
    raise ValueError(f"cannot resolve value spec {spec!r}")


def _resolve_number(spec, context: Mapping) -> float:
    value = _resolve(spec, context)
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"value spec {spec!r} gave {value!r}, not a finite number")
    return float(value)


def _describe(spec) -> str:
    """A value spec as a short formula, for the answer key."""
    if isinstance(spec, str):
        return f"your measured `{spec[1:]}`" if spec.startswith("$") else repr(spec)
    if isinstance(spec, bool):
        return str(spec)
    if isinstance(spec, Real):
        return format_number(spec, 4)
    if "hardware" in spec:
        what = spec.get("attr") or f"peak_flops({spec['peak_flops']!r})"
        return f"{spec['hardware']}.{what}"
    args = ", ".join(f"{k}={_describe(v)}" for k, v in spec.get("args", {}).items())
    return f"{spec['fn']}({args})"


def _placeholder_value(q: Question, name: str, context: Mapping):
    if name in q.given:
        return _resolve(q.given[name], context), q.given[name]
    spec = (q.answer or {}).get("args", {})[name]
    return _resolve(spec, context), spec


def _render(q: Question, context: Mapping) -> str:
    def fill(match: re.Match) -> str:
        name, units = match.group(1), (match.group(2) or "").strip()
        try:
            value, _ = _placeholder_value(q, name, context)
        except MissingContext as missing:
            return f"[your measured {missing.key}]"
        except (ValueError, TypeError):  # a measured value the course functions refuse
            return f"[{name}: not available]"
        if isinstance(value, str):
            return value.upper() if value.lower() in _precision.NAMES else value
        if isinstance(value, bool) or not isinstance(value, Real):
            return f"[{name}: not available]"
        return _with_units(float(value) / _unit_scale(units), units)

    return _PLACEHOLDER.sub(fill, q.question)


def _answer_text(q: Question, context: Mapping) -> str:
    """Markdown: the right answer and the explanation."""
    if q.is_numeric:
        try:
            expected = q.expected(context)
            low, high = q.accepted_range(context)
            accepted = (f"exactly {_with_units(expected, q.units)}" if low == high else
                        f"from {format_number(low)} to {_with_units(high, q.units)}")
            answer = f"**Answer: ≈ {_with_units(expected, q.units)}** (accepted: {accepted})"
        except MissingContext:
            scale = _unit_scale(q.units)
            formula = _describe(q.answer)
            if scale < 1.0:
                formula += f" × {format_number(1 / scale)}"
            elif scale > 1.0:
                formula += f" / {format_number(scale)}"
            answer = f"**Answer: {formula}** in {q.units} (depends on the learner's measurements)"
        return f"{answer}\n\n{q.explanation}"
    right = "\n".join(f"- {_LETTERS[i]}) {q.options[i].text}" for i in q.correct_indices)
    return f"**Answer:**\n\n{right}\n\n{q.explanation}"


# ============================================================================ grading
def grade(question: Question, answer, context: Mapping | None = None) -> Result:
    """Grade one answer. Pure; never raises on a learner's answer.

    - multiple_choice: ``answer`` is an option index (or its text); None means nothing chosen.
    - many_choice: an iterable of indices (or texts); right only if exactly the right set.
    - numeric: a string as typed (see ``parse_number``) or a number, in ``question.units``;
      right if within the tolerance. A measured question needs its keys in ``context``.
    """
    ctx = _as_context(context)
    if question.type == "multiple_choice":
        return _grade_single(question, answer)
    if question.type == "many_choice":
        return _grade_many(question, answer)
    return _grade_numeric(question, answer, ctx)


def _option_index(q: Question, choice) -> int | None:
    if isinstance(choice, bool):
        return None
    if isinstance(choice, int) and 0 <= choice < len(q.options):
        return choice
    if isinstance(choice, str):
        for i, option in enumerate(q.options):
            if choice.strip() == option.text:
                return i
    return None


def _invalid(message: str) -> Result:
    return Result(correct=False, status="invalid", headline=message)


def _grade_single(q: Question, answer) -> Result:
    if answer is None or answer == "" or answer == ():
        return _invalid("Choose one of the options first, then press Check.")
    index = _option_index(q, answer)
    if index is None:
        return _invalid("That is not one of the options: choose one of them, then press Check.")
    option = q.options[index]
    headline = "Correct!" if option.correct else "Not quite."
    return Result(correct=option.correct, status="correct" if option.correct else "incorrect",
                  headline=headline, details=(option.feedback,))


def _grade_many(q: Question, answer) -> Result:
    if answer is None or isinstance(answer, (bool, int, str)):
        chosen_raw = [] if answer is None or answer == "" else [answer]
    else:
        try:
            chosen_raw = list(answer)
        except TypeError:
            return _invalid("Tick the options you think are right, then press Check.")
    if not chosen_raw:
        return _invalid("Tick at least one option, then press Check.")
    chosen: list[int] = []
    for choice in chosen_raw:
        index = _option_index(q, choice)
        if index is None:
            return _invalid("That is not one of the options: tick some of them, then press Check.")
        if index not in chosen:
            chosen.append(index)
    chosen.sort()
    right = set(q.correct_indices)
    details = tuple(f"{_LETTERS[i]}) {q.options[i].feedback}" for i in chosen)
    if set(chosen) == right:
        return Result(correct=True, status="correct",
                      headline="Correct! You ticked exactly the right options.", details=details)
    wrong = [i for i in chosen if i not in right]
    missed = right - set(chosen)
    if wrong and missed:
        headline = "Not quite: some ticks are wrong, and a right option is still unticked."
    elif wrong:
        headline = "Not quite: at least one of your ticks is wrong."
    else:
        headline = "Right so far, but not complete: another option is also right."
    return Result(correct=False, status="incorrect", headline=headline, details=details)


def _grade_numeric(q: Question, answer, context: Mapping) -> Result:
    try:
        expected = q.expected(context)
    except MissingContext as missing:
        return Result(
            correct=False, status="needs_context",
            headline=(f"This question is about your own machine, and it needs your measurement "
                      f"`{missing.key}`: run the measurement cell above first, then run this quiz "
                      f"cell again."))
    except (ValueError, TypeError) as err:  # a measured value the course functions refuse (e.g. zero)
        return Result(correct=False, status="needs_context",
                      headline=f"Your measurements could not be used for this question ({err}). "
                               "Run the measurement cell above again.")
    try:
        value = parse_number(answer, q.units)
    except AnswerError as err:
        return _invalid(str(err))
    shown = _with_units(value, q.units)
    if _within(value, expected, q.tolerance):
        return Result(correct=True, status="correct", expected=expected,
                      headline=f"Correct! The course's model gives {_with_units(expected, q.units)}.",
                      details=(q.feedback["correct"],))
    for mistake in q.mistakes:
        try:
            trap = _resolve_number(mistake.answer, context) / _unit_scale(q.units)
        except (MissingContext, ValueError):
            continue
        if _within(value, trap, q.tolerance):
            return Result(correct=False, status="incorrect", expected=expected,
                          headline=f"Not quite: {shown} is a common slip.", details=(mistake.feedback,))
    for power in (3, 6, 9, 12):
        for factor in (10.0**power, 10.0**-power):
            if _within(value, expected * factor, q.tolerance):
                return Result(
                    correct=False, status="incorrect", expected=expected,
                    headline=f"Not quite: {shown} is off by a factor of 10^{power}.",
                    details=(f"Check your units: the answer is asked in {q.units or 'plain numbers'}.",
                             q.feedback["incorrect"]))
    direction = "too_low" if value < expected else "too_high"
    detail = q.feedback.get(direction, q.feedback["incorrect"])
    word = "low" if value < expected else "high"
    return Result(correct=False, status="incorrect", expected=expected,
                  headline=f"Not quite: {shown} is too {word}.", details=(detail,))


# ============================================================================ loading and validation
def notebook_ids() -> list[str]:
    """Ids of the notebooks that have a quiz bank."""
    folder = resources.files("course_lib").joinpath("data/quizzes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def normalize_notebook_id(notebook_id) -> str:
    """``1``, ``"1"``, ``"01"``, ``"01_the_bottleneck"`` or ``"01_the_bottleneck.ipynb"`` -> ``"01"``."""
    valid = notebook_ids()
    text = str(notebook_id).strip() if isinstance(notebook_id, (int, str)) and not isinstance(
        notebook_id, bool) else ""
    text = re.split(r"[\\/]", text)[-1]
    text = re.sub(r"\.(ipynb|json)\Z", "", text, flags=re.IGNORECASE)
    match = re.fullmatch(r"(\d{1,2})(?:_(\w+))?", text.lower())
    if match:
        number = f"{int(match.group(1)):02d}"
        name_ok = match.group(2) is None or NOTEBOOKS.get(number) == f"{number}_{match.group(2)}"
        if number in valid and name_ok:
            return number
    listing = ", ".join(f"{i} ({NOTEBOOKS[i]})" if i in NOTEBOOKS else i for i in valid)
    raise ValueError(f"notebook_id={notebook_id!r} has no quiz; valid ids: {listing}")


def load_bank(notebook_id) -> Quiz:
    """Load and validate a notebook's bank (a fresh Quiz with no attempts)."""
    number = normalize_notebook_id(notebook_id)
    name = f"data/quizzes/{number}.json"
    text = resources.files("course_lib").joinpath(name).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"quiz bank {name}: not valid JSON: {err}") from None
    quiz = parse_bank(data, source=name)
    if quiz.notebook != number:
        raise ValueError(f"quiz bank {name}: field 'notebook' is {quiz.notebook!r}, expected {number!r}")
    return quiz


def answer_key(notebook_id, context: Mapping | None = None) -> str:
    """The answer key of a notebook's quiz as Markdown (for ``python -m course_lib quiz --answers``)."""
    return load_bank(notebook_id).answer_key(context)


def parse_bank(data, source: str = "<bank>") -> Quiz:
    """Validate a bank (parsed JSON) and build the Quiz; ValueError names the bank, the question
    id and the field of the first problem found."""
    where = f"quiz bank {source}"
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: the top level must be an object with 'notebook', 'title', 'questions'")
    _no_unknown(data, {"schema_version", "notebook", "title", "questions"}, where)
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{where}: field 'schema_version' must be {SCHEMA_VERSION}, "
                         f"got {data.get('schema_version')!r}")
    notebook = _text(data, "notebook", where)
    title = _text(data, "title", where)
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise ValueError(f"{where}: field 'questions' must be a non-empty list")
    questions, seen = [], set()
    for position, raw in enumerate(raw_questions):
        label = f"{where}, question #{position + 1}"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{label}: must be an object")
        qid = raw.get("id")
        if not isinstance(qid, str) or not _ID.match(qid):
            raise ValueError(f"{label}: field 'id' must be lower-case letters, digits and '-', got {qid!r}")
        if qid in seen:
            raise ValueError(f"{where}, question '{qid}': field 'id' is used twice")
        seen.add(qid)
        questions.append(_parse_question(raw, f"{where}, question '{qid}'"))
    return Quiz(notebook=notebook, title=title, questions=tuple(questions), source=source)


def _no_unknown(raw: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _text(raw: Mapping, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field '{key}' must be a non-empty string, got {value!r}")
    return value


_COMMON = {"id", "type", "question", "explanation", "given", "verify"}
_ALLOWED = {
    "multiple_choice": _COMMON | {"options"},
    "many_choice": _COMMON | {"options"},
    "numeric": _COMMON | {"answer", "tolerance", "units", "feedback", "mistakes"},
}


def _parse_question(raw: Mapping, where: str) -> Question:
    qtype = raw.get("type")
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"{where}: field 'type' must be one of {', '.join(QUESTION_TYPES)}, got {qtype!r}")
    _no_unknown(raw, _ALLOWED[qtype], where)
    text = _text(raw, "question", where)
    explanation = _text(raw, "explanation", where)
    given = raw.get("given", {})
    if not isinstance(given, Mapping):
        raise ValueError(f"{where}: field 'given' must be an object of named values")
    for name, spec in given.items():
        _check_spec(spec, f"{where}: field 'given.{name}'")
    verify = raw.get("verify", [])
    if not isinstance(verify, list):
        raise ValueError(f"{where}: field 'verify' must be a list")
    for i, check in enumerate(verify):
        label = f"{where}: field 'verify[{i}]'"
        if not isinstance(check, Mapping) or "expect" not in check:
            raise ValueError(f"{label} must be an object with 'fn', 'args' and 'expect'")
        _no_unknown(check, {"fn", "args", "expect"}, label)
        _check_spec({"fn": check.get("fn"), "args": check.get("args", {})}, label)
        if _refs(check):
            raise ValueError(f"{label}: a check cannot use measured values ($...)")

    options: tuple[Option, ...] = ()
    kwargs: dict = {}
    if qtype in ("multiple_choice", "many_choice"):
        options = _parse_options(raw.get("options"), qtype, where)
    else:
        kwargs = _parse_numeric(raw, where)
    q = Question(id=raw["id"], type=qtype, question=text, explanation=explanation, options=options,
                 given=dict(given), verify=tuple(verify), **kwargs)

    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1)
        if name not in q.given and name not in (q.answer or {}).get("args", {}):
            raise ValueError(f"{where}: field 'question' uses {{{name}}}, which is neither in "
                             "'given' nor an argument of 'answer'")
    # resolve what can be resolved now, so a broken bank fails at load, not in front of a learner
    for name, spec in q.given.items():
        _try_resolve(spec, f"{where}: field 'given.{name}'")
    if q.is_numeric:
        _try_resolve(q.answer, f"{where}: field 'answer'")
        for i, mistake in enumerate(q.mistakes):
            _try_resolve(mistake.answer, f"{where}: field 'mistakes[{i}].answer'")
    return q


def _parse_options(raw_options, qtype: str, where: str) -> tuple[Option, ...]:
    if not isinstance(raw_options, list) or len(raw_options) < 2:
        raise ValueError(f"{where}: field 'options' must be a list of at least 2 options")
    options = []
    for i, raw in enumerate(raw_options):
        label = f"{where}: field 'options[{i}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{label}' must be an object with 'text', 'correct', 'feedback'")
        _no_unknown(raw, {"text", "correct", "feedback"}, label + "'")
        text = _text(raw, "text", f"{where}: options[{i}]")
        feedback = _text(raw, "feedback", f"{where}: options[{i}]")
        if not isinstance(raw.get("correct"), bool):
            raise ValueError(f"{label}.correct' must be true or false, got {raw.get('correct')!r}")
        options.append(Option(text=text, correct=raw["correct"], feedback=feedback))
    texts = [o.text for o in options]
    if len(set(texts)) != len(texts):
        raise ValueError(f"{where}: field 'options' has two options with the same text")
    n_right = sum(o.correct for o in options)
    if qtype == "multiple_choice" and n_right != 1:
        raise ValueError(f"{where}: field 'options' must have exactly one correct option for "
                         f"multiple_choice, has {n_right} (use many_choice for several)")
    if qtype == "many_choice" and n_right < 1:
        raise ValueError(f"{where}: field 'options' must have at least one correct option")
    return tuple(options)


def _parse_numeric(raw: Mapping, where: str) -> dict:
    answer = raw.get("answer")
    _check_computed(answer, f"{where}: field 'answer'")
    units = raw.get("units")
    if not isinstance(units, str):
        raise ValueError(f"{where}: field 'units' must be a string (\"\" for a plain number)")
    tolerance = raw.get("tolerance")
    if not isinstance(tolerance, Mapping) or not tolerance or set(tolerance) - {"rel", "abs"}:
        raise ValueError(f"{where}: field 'tolerance' must be {{'rel': r}} and/or {{'abs': a}}")
    for key, value in tolerance.items():
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < math.inf:
            raise ValueError(f"{where}: field 'tolerance.{key}' must be a number >= 0, got {value!r}")
    if tolerance.get("rel", 0) >= 1:
        raise ValueError(f"{where}: field 'tolerance.rel' must be below 1 (0.05 means 5 %)")
    feedback = raw.get("feedback")
    if not isinstance(feedback, Mapping):
        raise ValueError(f"{where}: field 'feedback' must be an object with 'correct' and 'incorrect'")
    _no_unknown(feedback, {"correct", "incorrect", "too_low", "too_high"}, f"{where}: field 'feedback'")
    for key in ("correct", "incorrect"):
        _text(feedback, key, f"{where}: feedback")
    for key in ("too_low", "too_high"):
        if key in feedback:
            _text(feedback, key, f"{where}: feedback")
    mistakes = []
    raw_mistakes = raw.get("mistakes", [])
    if not isinstance(raw_mistakes, list):
        raise ValueError(f"{where}: field 'mistakes' must be a list")
    for i, m in enumerate(raw_mistakes):
        label = f"{where}: field 'mistakes[{i}]'"
        if not isinstance(m, Mapping):
            raise ValueError(f"{label} must be an object with 'answer' and 'feedback'")
        _no_unknown(m, {"answer", "feedback"}, label)
        _check_computed(m.get("answer"), f"{where}: field 'mistakes[{i}].answer'")
        mistakes.append(Mistake(answer=m["answer"], feedback=_text(m, "feedback", f"{where}: mistakes[{i}]")))
    return {"answer": answer, "units": units, "tolerance": dict(tolerance), "feedback": dict(feedback),
            "mistakes": tuple(mistakes)}


def _check_computed(spec, where: str) -> None:
    if not isinstance(spec, Mapping) or "fn" not in spec:
        raise ValueError(f"{where} must be {{'fn': ..., 'args': {{...}}}}: numeric answers are "
                         f"computed by course code, never typed in (got {spec!r})")
    _check_spec(spec, where)


def _check_spec(spec, where: str) -> None:
    """Structure of a value spec (no calls made)."""
    if isinstance(spec, str):
        if spec.startswith("$") and not re.fullmatch(r"\$[A-Za-z_]\w*", spec):
            raise ValueError(f"{where}: {spec!r} is not a valid measured-value name ($name)")
        return
    if isinstance(spec, (bool, Real)):
        if isinstance(spec, Real) and not isinstance(spec, bool) and not math.isfinite(spec):
            raise ValueError(f"{where}: {spec!r} is not a finite number")
        return
    if isinstance(spec, Mapping) and "hardware" in spec:
        _no_unknown(spec, {"hardware", "attr", "peak_flops"}, where)
        if ("attr" in spec) == ("peak_flops" in spec):
            raise ValueError(f"{where}: a hardware value needs exactly one of 'attr' or 'peak_flops'")
        if "attr" in spec and spec["attr"] not in _HARDWARE_ATTRS:
            raise ValueError(f"{where}: 'attr' must be one of {', '.join(_HARDWARE_ATTRS)}, got {spec['attr']!r}")
        return
    if isinstance(spec, Mapping) and "fn" in spec:
        _no_unknown(spec, {"fn", "args"}, where)
        fn = FUNCTIONS.get(spec["fn"])
        if fn is None:
            raise ValueError(f"{where}: 'fn' {spec['fn']!r} is not a course function a bank may call; "
                             f"allowed: {', '.join(sorted(FUNCTIONS))}")
        args = spec.get("args", {})
        if not isinstance(args, Mapping):
            raise ValueError(f"{where}: 'args' must be an object")
        try:
            inspect.signature(fn).bind(**args)
        except TypeError as err:
            raise ValueError(f"{where}: 'args' do not fit {spec['fn']}: {err}") from None
        for name, value in args.items():
            _check_spec(value, f"{where}.args.{name}")
        return
    raise ValueError(f"{where}: {spec!r} is not a value: use a number, a string, \"$measured_name\", "
                     "{'hardware': ..., 'attr': ...} or {'fn': ..., 'args': ...}")


def _try_resolve(spec, where: str) -> None:
    try:
        _resolve(spec, {})
    except MissingContext:
        return  # a measured value: resolved when the learner has measured
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
