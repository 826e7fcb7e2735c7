"""Quiz banks: the schema of ``data/quizzes/NN.json``, loading and validation, and the value specs.

Scope: everything about a bank as *data* (docs/QUIZ_SCHEMA.md), nothing about grading or the
learner's progress (``course_lib.quiz``) or display (``course_lib.quiz_widget``).

- ``Option``, ``Mistake``, ``Question``, ``Bank``: a validated bank. A ``Question`` fills in its
  text and computes its answer (``expected``, ``accepted_range``) in its display ``units``.
- ``read_bank("01")`` reads a notebook's bank file; ``validate_bank(data)`` checks a parsed one.
  A ``ValueError`` names the bank, the question id and the field of the first problem found, and
  every value that can be computed at load time is, so a broken bank fails here, not in front of
  a learner.
- Value specs: a number or string as it is, ``"$key"`` (a measurement of the learner's machine,
  from the ``context`` mapping given at run time), ``{"hardware": ..., "attr" | "peak_flops": ...}``
  (the hardware catalogue) or ``{"fn": ..., "args": {...}}`` (a call of a whitelisted course
  function, ``FUNCTIONS``). Numeric answers are always such calls, never typed in.
- ``normalize_notebook_id``: ``1``, ``"01"``, ``"01_the_bottleneck.ipynb"``, ... -> ``"01"``.
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
    "FUNCTIONS",
    "NOTEBOOKS",
    "QUESTION_TYPES",
    "SCHEMA_VERSION",
    "UNITS",
    "Bank",
    "MissingContext",
    "Mistake",
    "Option",
    "Question",
    "format_number",
    "normalize_notebook_id",
    "notebook_ids",
    "read_bank",
    "validate_bank",
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


def _is_finite_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _finite(name: str, value) -> float:
    if not _is_finite_number(value):
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


# Course functions a bank may call, by the name used in the bank: every public function of
# course_lib.perf (perf.__all__) except the two that return tables, and plain arithmetic on
# measured values for the few questions no perf formula covers.
_NOT_NUMERIC = {"decode_table", "decode_components"}
FUNCTIONS: dict[str, object] = {
    **{f"perf.{name}": getattr(_perf, name) for name in _perf.__all__
       if name not in _NOT_NUMERIC and inspect.isfunction(getattr(_perf, name))},
    "math.div": _div,
    "math.mul": _mul,
}

_HARDWARE_ATTRS = ("bandwidth", "memory")
_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]+))?\}")


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
        specs = [self.answer, *self.given.values(), *(m.answer for m in self.mistakes)]
        return tuple(dict.fromkeys(key for spec in specs for key in _refs(spec)))

    @property
    def measured(self) -> bool:
        return bool(self.context_keys)

    @property
    def correct_indices(self) -> tuple[int, ...]:
        return tuple(i for i, option in enumerate(self.options) if option.correct)

    def in_units(self, spec, context: Mapping | None = None) -> float:
        """A numeric value spec (the answer, a mistake) in the question's display units;
        MissingContext if a measured value is missing."""
        return _resolve_number(spec, _as_context(context)) / _unit_scale(self.units)

    def expected(self, context: Mapping | None = None) -> float:
        """The right answer in the question's display units; MissingContext if a measured
        value is missing."""
        return self.in_units(self.answer, context)

    def accepted_range(self, context: Mapping | None = None) -> tuple[float, float]:
        """The smallest and largest answers graded correct."""
        expected = self.expected(context)
        width = _tolerance_width(self.tolerance, expected)
        return expected - width, expected + width

    def text(self, context: Mapping | None = None) -> str:
        """The question with its ``{placeholders}`` filled in (unmeasured values are named)."""
        return _render(self, _as_context(context))


@dataclass(eq=False)
class Bank:
    """A validated bank; ``course_lib.quiz.Quiz`` adds the learner's progress to it."""

    notebook: str
    title: str
    questions: tuple[Question, ...]
    source: str = ""

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


# ============================================================================ numbers and units
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
    if isinstance(spec, Real):
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
    if not _is_finite_number(value):
        raise ValueError(f"value spec {spec!r} gave {value!r}, not a finite number")
    return float(value)


def _render(q: Question, context: Mapping) -> str:
    def fill(match: re.Match) -> str:
        name, units = match.group(1), (match.group(2) or "").strip()
        spec = q.given[name] if name in q.given else (q.answer or {}).get("args", {})[name]
        try:
            value = _resolve(spec, context)
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


# ============================================================================ loading
def notebook_ids() -> list[str]:
    """Ids of the notebooks that have a quiz bank."""
    folder = resources.files("course_lib").joinpath("data/quizzes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def normalize_notebook_id(notebook_id) -> str:
    """``1``, ``"1"``, ``"01"``, ``"01_the_bottleneck"`` or ``"01_the_bottleneck.ipynb"`` -> ``"01"``."""
    valid = notebook_ids()
    readable = isinstance(notebook_id, (int, str)) and not isinstance(notebook_id, bool)
    text = re.split(r"[\\/]", str(notebook_id).strip())[-1] if readable else ""
    text = re.sub(r"\.(ipynb|json)\Z", "", text, flags=re.IGNORECASE)
    match = re.fullmatch(r"(\d{1,2})(?:_(\w+))?", text.lower())
    if match:
        number = f"{int(match.group(1)):02d}"
        name_ok = match.group(2) is None or NOTEBOOKS.get(number) == f"{number}_{match.group(2)}"
        if number in valid and name_ok:
            return number
    listing = ", ".join(f"{i} ({NOTEBOOKS[i]})" if i in NOTEBOOKS else i for i in valid)
    raise ValueError(f"notebook_id={notebook_id!r} has no quiz; valid ids: {listing}")


def read_bank(notebook_id) -> Bank:
    """Read and validate a notebook's bank file."""
    number = normalize_notebook_id(notebook_id)
    name = f"data/quizzes/{number}.json"
    text = resources.files("course_lib").joinpath(name).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"quiz bank {name}: not valid JSON: {err}") from None
    bank = validate_bank(data, source=name)
    if bank.notebook != number:
        raise ValueError(f"quiz bank {name}: field 'notebook' is {bank.notebook!r}, expected {number!r}")
    return bank


# ============================================================================ validation
def validate_bank(data, source: str = "<bank>") -> Bank:
    """Validate a bank (parsed JSON) and build it; ValueError names the bank, the question id and
    the field of the first problem found."""
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
    return Bank(notebook=notebook, title=title, questions=tuple(questions), source=source)


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

    fields = (_parse_numeric(raw, where) if qtype == "numeric"
              else {"options": _parse_options(raw.get("options"), qtype, where)})
    q = Question(id=raw["id"], type=qtype, question=text, explanation=explanation,
                 given=dict(given), verify=tuple(verify), **fields)

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
        if not _is_finite_number(value) or value < 0:
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
    if isinstance(spec, Real):
        if not math.isfinite(spec):
            raise ValueError(f"{where}: {spec!r} is not a finite number")
        return
    if isinstance(spec, Mapping) and "hardware" in spec:
        _no_unknown(spec, {"hardware", "attr", "peak_flops"}, where)
        if ("attr" in spec) == ("peak_flops" in spec):
            raise ValueError(f"{where}: a hardware value needs exactly one of 'attr' or 'peak_flops'")
        if "attr" in spec and spec["attr"] not in _HARDWARE_ATTRS:
            raise ValueError(f"{where}: 'attr' must be one of {', '.join(_HARDWARE_ATTRS)}, "
                             f"got {spec['attr']!r}")
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
