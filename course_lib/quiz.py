"""Quizzes: the banks (data/quizzes/NN.json, docs/QUIZ_SCHEMA.md), grading, and answer keys.

``load_bank("01")`` checks a bank against ``data/quiz.schema.json`` and then what a schema cannot say;
a ``ValueError`` names the bank and the question. Numeric answers are computed, never typed in:
``{"fn": "perf.decode_time", "args": {...}}``, with ``"$bandwidth"`` for a learner's measurement (from
``context``). ``grade(question, answer, context)`` is pure and never raises on a learner's answer.
``answer_key("01")`` is the instructors' Markdown. No torch, no ipywidgets (see ``quiz_widget``).
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from numbers import Real
from typing import NamedTuple

import jsonschema

from . import hardware, perf

__all__ = ["FUNCTIONS", "UNITS", "AnswerError", "Bank", "MissingContext", "Option", "Question", "Result",
           "answer_key", "answer_text", "format_number", "grade", "load_bank", "notebook_ids", "parse_bank",
           "parse_number"]

# Functions a bank may call: perf's public formulas (not its table builder), and one division.
FUNCTIONS = {f"perf.{name}": getattr(perf, name) for name in perf.__all__ if name != "decode_table"}
FUNCTIONS["math.div"] = lambda a, b: perf.check_number("a", a) / perf.check_positive("b", b)
# Display unit -> its size in SI. Course functions return SI values; a question asked in one of these
# units is converted ("ms": seconds / 1e-3). Other units ("tokens/s", "FLOP/byte") are taken as they are.
UNITS = {"B": 1.0, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30,
         "B/s": 1.0, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12, "FLOP": 1.0, "GFLOP": 1e9, "TFLOP": 1e12,
         "FLOP/s": 1.0, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6,
         "thousand": 1e3, "million": 1e6, "billion": 1e9, "%": 1e-2}
# What a learner may type after a number besides the question's own unit.
_UNIT_ALIASES = {"×": ("x", "times"), "tokens/s": ("tok/s", "token/s", "tokens per second"), "tokens": ("token",),
                 "ms": ("milliseconds", "millisecond"), "FLOP/byte": ("FLOP/B", "FLOPs/byte"), "GPUs": ("GPU",)}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)(?::([^{}]+))?\}")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_KINDS = {"multiple_choice": "one answer", "many_choice": "one or more answers", "numeric": "numeric"}


class MissingContext(LookupError):
    """A measured question needs a measurement (``err.key``) that the context lacks."""

    key = property(lambda self: self.args[0])


# ============================================================================ values
def _walk(spec):
    """A value spec and every value inside it (the arguments of calls, recursively)."""
    yield spec
    for value in spec.get("args", {}).values() if isinstance(spec, Mapping) else ():
        yield from _walk(value)


def _refs(*specs) -> list[str]:
    """The context keys ("$name") that value specs use."""
    return [v[1:] for spec in specs for v in _walk(spec) if isinstance(v, str) and v.startswith("$")]


def _resolve(spec, context: Mapping):
    if isinstance(spec, str) and spec.startswith("$"):
        if context.get(spec[1:]) is None:
            raise MissingContext(spec[1:])
        return context[spec[1:]]
    if isinstance(spec, Mapping) and "hardware" in spec:
        device = hardware.get(spec["hardware"])
        return getattr(device, spec["attr"]) if "attr" in spec else device.peak_flops(spec["peak_flops"])
    if isinstance(spec, Mapping):
        return FUNCTIONS[spec["fn"]](**{k: _resolve(v, context) for k, v in spec["args"].items()})
    return spec


def format_number(x: float, digits: int = 3) -> str:
    """3 significant figures; whole numbers in full below 1e7; e-notation beyond (``115``, ``1.3e10``)."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    whole = math.floor(math.log10(abs(x))) + 1 if 1e-3 <= abs(x) < 1e7 else 0  # digits before the point
    mantissa, _, exponent = f"{x:.{max(digits, whole)}g}".partition("e")
    return mantissa + (f"e{int(exponent)}" if exponent else "")


def _with_units(value: float, units: str) -> str:
    return format_number(value) + ("" if units in ("", "%") else " ") + units


# ============================================================================ the bank
class Option(NamedTuple):
    text: str
    correct: bool
    feedback: str


@dataclass(frozen=True, eq=False)
class Question:
    """One question as the bank has it (docs/QUIZ_SCHEMA.md). Values are resolved when needed: a
    measured question exists before the learner has measured anything."""

    id: str
    type: str  # multiple_choice, many_choice or numeric
    question: str
    explanation: str
    options: tuple[Option, ...]
    answer: Mapping | None  # numeric: {"fn", "args"}
    units: str
    tolerance: Mapping  # {"rel": r} and/or {"abs": a}
    feedback: Mapping  # numeric: correct, incorrect, too_low, too_high
    mistakes: tuple[Mapping, ...]  # {"answer": {"fn", "args"}, "feedback": text}
    given: Mapping  # placeholder name -> value
    verify: tuple[Mapping, ...]

    @property
    def context_keys(self) -> tuple[str, ...]:
        """The learner's measurements this question needs (empty: not a measured question)."""
        return tuple(dict.fromkeys(_refs(self.answer, *self.given.values(), *(m["answer"] for m in self.mistakes))))

    @property
    def correct_indices(self) -> tuple[int, ...]:
        return tuple(i for i, option in enumerate(self.options) if option.correct)

    def expected(self, context: Mapping | None = None, spec=None) -> float:
        """The answer (or another call of the bank, e.g. a mistake) in the question's units;
        MissingContext if a measurement is missing, ValueError if the course refuses one."""
        value = perf.check_number("value", _resolve(spec or self.answer, context or {}))
        return value / UNITS.get(self.units, 1.0)

    def text(self, context: Mapping | None = None) -> str:
        """The question with its ``{placeholders}`` filled in (missing measurements are named)."""
        def fill(match: re.Match) -> str:
            name, units = match.group(1), (match.group(2) or "").strip()
            try:
                value = _resolve(self.given[name] if name in self.given else self.answer["args"][name], context or {})
            except MissingContext as missing:
                return f"[your measured {missing.key}]"
            except (ValueError, TypeError):  # a measurement the course functions refuse
                return f"[{name}: not available]"
            if isinstance(value, str):
                return value.upper() if value.lower() in perf.PRECISIONS else value
            if isinstance(value, bool) or not isinstance(value, Real):
                return f"[{name}: not available]"
            return _with_units(value / UNITS.get(units, 1.0), units)
        return _PLACEHOLDER.sub(fill, self.question)


class Bank(NamedTuple):
    notebook: str
    title: str
    questions: tuple[Question, ...]


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("course_lib").joinpath("data/quiz.schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _semantic_problem(q: dict) -> str | None:
    """The first problem of a schema-valid question that the schema cannot express, or None."""
    texts, right = [o["text"] for o in q.get("options", [])], sum(o["correct"] for o in q.get("options", []))
    if q["type"] == "multiple_choice" and right != 1:
        return f"options: multiple_choice needs exactly one correct option, has {right} (many_choice allows several)"
    if q["type"] == "many_choice" and right < 1:
        return "options: many_choice needs at least one correct option"
    if len(set(texts)) != len(texts):
        return "options: two options have the same text"
    for match in _PLACEHOLDER.finditer(q["question"]):
        if match.group(1) not in q.get("given", {}) and match.group(1) not in q.get("answer", {}).get("args", {}):
            return f"question: {{{match.group(1)}}} is neither in 'given' nor an argument of 'answer'"
    values = [("answer", q["answer"])] if "answer" in q else []
    values += [*((f"mistakes[{i}].answer", m["answer"]) for i, m in enumerate(q.get("mistakes", []))),
              *((f"given.{k}", v) for k, v in q.get("given", {}).items()),
              *((f"verify[{i}]", v) for i, v in enumerate(q.get("verify", [])))]
    for where, spec in values:
        for call in (v for v in _walk(spec) if isinstance(v, Mapping) and "fn" in v):
            if call["fn"] not in FUNCTIONS:
                return f"{where}: unknown function {call['fn']!r}; banks may call math.div, perf.NAME (perf.__all__)"
            try:
                inspect.signature(FUNCTIONS[call["fn"]]).bind(**call["args"])
            except TypeError as err:
                return f"{where}: the args do not fit {call['fn']}: {err}"
        if where.startswith("verify") and _refs(spec):
            return f"{where}: a check cannot use measured values ($...)"
        try:  # compute now what can be computed, so a broken bank never reaches a learner
            value = _resolve(spec, {})
            if where.startswith(("answer", "mistakes")):
                perf.check_number("value", value)
        except MissingContext:
            continue
        except (ValueError, TypeError) as err:
            return f"{where}: {err}"
        if where.startswith("verify") and value != spec["expect"]:
            return f"{where}: {spec['fn']} gives {value!r}, the bank expects {spec['expect']!r}"
    return None


def parse_bank(data, source: str = "<bank>") -> Bank:
    """Validate a bank (parsed JSON) and build it; ValueError names the bank, question and field."""
    def where(path: list) -> str:
        if len(path) < 2 or path[0] != "questions":
            return f"quiz bank {source}"
        raw = data["questions"][path[1]]
        name = f"'{raw['id']}'" if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{path[1] + 1}"
        return f"quiz bank {source}, question {name}"

    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        path = list(error.absolute_path)
        inner = path[2:] if path[:1] == ["questions"] else path
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in inner).lstrip(".")
        message = error.message if len(error.message) < 200 else error.message[:197] + "..."
        if "propertyNames" in error.absolute_schema_path:  # a field that this type of question does not have
            message = f"unknown field {error.instance!r}; allowed: {', '.join(error.validator_value)}"
        raise ValueError(f"{where(path)}: {field + ': ' if field else ''}{message}")
    for i, q in enumerate(data["questions"]):
        problem = ("id: used twice in this bank" if q["id"] in [p["id"] for p in data["questions"][:i]]
                   else _semantic_problem(q))
        if problem:
            raise ValueError(f"{where(['questions', i])}: {problem}")
    empty = {"answer": None, "units": "", "tolerance": {}, "feedback": {}, "given": {}}
    return Bank(data["notebook"], data["title"], tuple(
        Question(**{**empty, **q, "options": tuple(Option(**o) for o in q.get("options", ())),
                    "mistakes": tuple(q.get("mistakes", ())), "verify": tuple(q.get("verify", ()))})
        for q in data["questions"]))


def notebook_ids() -> list[str]:
    """Ids of the notebooks that have a quiz bank: ``["00", "01", ...]``."""
    folder = resources.files("course_lib").joinpath("data/quizzes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_bank(notebook_id) -> Bank:
    """A notebook's bank. ``1``, ``"01"`` and ``"notebooks/01_the_bottleneck.ipynb"`` all mean 01."""
    readable = isinstance(notebook_id, (int, str)) and not isinstance(notebook_id, bool)
    digits = re.match(r"\d+", str(notebook_id).replace("\\", "/").rsplit("/", 1)[-1].strip()) if readable else None
    number = f"{int(digits.group()):02d}" if digits else None
    if number not in notebook_ids():
        raise ValueError(f"notebook_id={notebook_id!r} has no quiz; valid ids: {', '.join(notebook_ids())}")
    source = f"{number}.json"
    try:
        data = json.loads(resources.files("course_lib").joinpath(f"data/quizzes/{source}").read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"quiz bank {source}: not valid JSON: {err}") from None
    bank = parse_bank(data, source)
    if bank.notebook != number:
        raise ValueError(f"quiz bank {source}: notebook: is {bank.notebook!r}, expected {number!r}")
    return bank


# ============================================================================ answer keys
def answer_key(notebook_id, context: Mapping | None = None) -> str:
    """Every question of a notebook's quiz with its answer and explanation, as Markdown (instructors)."""
    bank = load_bank(notebook_id)
    out = [f"# Answer key, quiz {bank.notebook}: {bank.title}", ""]
    for number, q in enumerate(bank.questions, 1):
        kind = _KINDS[q.type] + (", measured on the learner's machine" if q.context_keys else "")
        out += [f"## Q{number} `{q.id}` ({kind})", "", q.text(context), ""]
        out += [f"- {letter}) {o.text} — {'**right**' if o.correct else 'wrong'}: {o.feedback}"
                for letter, o in zip(_LETTERS, q.options, strict=False)] + ([""] if q.options else [])
        out += [answer_text(q, context), ""]
    return "\n".join(out).rstrip() + "\n"


def _describe(spec) -> str:
    """A value spec as a short formula (the answer key of a measured question)."""
    if isinstance(spec, str):
        return f"your measured `{spec[1:]}`" if spec.startswith("$") else repr(spec)
    if not isinstance(spec, Mapping):
        return format_number(spec, 4)
    if "hardware" in spec:
        return f"{spec['hardware']}.{spec.get('attr') or 'peak_flops(' + repr(spec['peak_flops']) + ')'}"
    return f"{spec['fn']}({', '.join(f'{k}={_describe(v)}' for k, v in spec['args'].items())})"


def answer_text(q: Question, context: Mapping | None = None) -> str:
    """Markdown: the right answer of one question and its explanation (the key, "Show answer")."""
    if q.type != "numeric":
        right = "\n".join(f"- {_LETTERS[i]}) {q.options[i].text}" for i in q.correct_indices)
        return f"**Answer:**\n\n{right}\n\n{q.explanation}"
    try:
        expected = q.expected(context)
        width = _width(q, expected)
        accepted = (f"exactly {_with_units(expected, q.units)}" if width == 0 else
                    f"from {format_number(expected - width)} to {_with_units(expected + width, q.units)}")
        answer = f"**Answer: ≈ {_with_units(expected, q.units)}** (accepted: {accepted})"
    except MissingContext:
        scale = UNITS.get(q.units, 1.0)
        formula = _describe(q.answer) + (f" × {format_number(1 / scale)}" if scale < 1 else
                                         f" / {format_number(scale)}" if scale > 1 else "")
        answer = f"**Answer: {formula}** in {q.units} (depends on the learner's measurements)"
    return f"{answer}\n\n{q.explanation}"


# ============================================================================ reading a learner's number
class AnswerError(ValueError):
    """A learner's answer that cannot be read; ``str(err)`` is a friendly message for them."""


_NUMBER = re.compile(r"[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+)?")
_LEADING_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_MALFORMED = [  # (what the learner typed, what to type instead)
    (r"[+-]?[\d.]+[eE][+-]?", "“{s}” is missing its exponent: write 1e3 for 1000, or 2.5e-3 for 0.0025."),
    (r"[+-]?[\d.]+\s*[x×*]\s*10\s*\^?\s*[+-]?\d+", "Write powers of ten with an e: 1.4e2 means 1.4 × 10^2."),
    (r"[+-]?[\d.]+(?:\s+[\d.]+)+", "Please remove the spaces inside the number (type 1000, not 1 000)."),
]


def parse_number(text, units: str = "") -> float:
    """Read a learner's number, or raise AnswerError with a message saying what to type instead.

    Accepted: ``143``, ``-2.5``, ``.5``, ``1.4e2``, ``1_000``, a leading ``~`` or ``≈``, the Unicode
    minus, and the question's unit after the number (``"115 tokens/s"``). Every comma is refused:
    ``1,5`` is 1.5 in much of Europe and ``1,000`` is 1000 in English; a guess would mark some wrong.
    """
    if isinstance(text, Real) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise AnswerError("Please type a finite number.")
        return float(text)
    if text is not None and not isinstance(text, str):
        raise AnswerError("Type a number, for example 143 or 1.4e2.")
    s = (text or "").strip().replace("\u2212", "-").replace("\u00a0", " ").lstrip("~≈").strip()
    if not s:
        raise AnswerError("Type a number first, for example 143 or 1.4e2.")
    for unit in sorted((units, *_UNIT_ALIASES.get(units, ())) if units else (), key=len, reverse=True):
        if s.lower().endswith(unit.lower()) and len(s) > len(unit):
            s = s[: -len(unit)].rstrip()
            break
    if "," in s:
        raise AnswerError("Please type the number without commas: a dot for decimals (2.5) and no thousands "
                          "separator (1000, or 1e3).")
    if _NUMBER.fullmatch(s):
        if not math.isfinite(float(s)):
            raise AnswerError("That number is too large to be a sensible answer; check the exponent.")
        return float(s)
    shown = s if len(s) <= 30 else s[:27] + "..."
    for pattern, message in _MALFORMED:
        if re.fullmatch(pattern, s):
            raise AnswerError(message.format(s=shown))
    leading = _LEADING_NUMBER.match(s)
    rest = s[leading.end():].lstrip() if leading else ""
    if rest and (rest[0].isalpha() or rest[0] in "%/°"):
        unit = f" (the answer is in {units})" if units else ""
        raise AnswerError(f"Type just the number, without units or words{unit}: for example {leading.group(0)}.")
    raise AnswerError(f"“{shown}” is not a number I can read. Type digits, such as 143, 0.5 or 1.4e2.")


# ============================================================================ grading
@dataclass(frozen=True)
class Result:
    """What ``grade`` says: status correct, incorrect, invalid (unreadable: not an attempt) or
    needs_context (a measured question before the measurement); ``headline`` and ``details`` for the learner."""

    correct: bool
    status: str
    headline: str
    details: tuple[str, ...] = ()

    @property
    def attempted(self) -> bool:
        return self.status in ("correct", "incorrect")

    @property
    def message(self) -> str:
        return "\n".join([self.headline, *self.details])


def grade(question: Question, answer, context: Mapping | None = None) -> Result:
    """Grade one answer. Pure; never raises on a learner's answer.

    multiple_choice: an option index (or its text). many_choice: indices (or texts), right only if
    exactly the right set. numeric: a string as typed (``parse_number``) or a number, in the question's
    units, right within the tolerance; a measured question takes its values from ``context``.
    """
    if context is not None and not isinstance(context, Mapping):
        raise TypeError(f"context={context!r} must be a dict of measurements (docs/QUIZ_SCHEMA.md) or None")
    if question.type == "numeric":
        return _grade_numeric(question, answer, context or {})
    many = question.type == "many_choice"
    if answer is None or answer == "" or (isinstance(answer, (list, tuple, set)) and not answer):
        return Result(False, "invalid", "Tick at least one option, then press Check." if many
                      else "Choose one of the options first, then press Check.")
    choices = list(answer) if many and isinstance(answer, (list, tuple, set)) else [answer]
    texts = [o.text for o in question.options]
    indices = [c if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(texts) else
               texts.index(c.strip()) if isinstance(c, str) and c.strip() in texts else None for c in choices]
    if None in indices:
        return Result(False, "invalid", "That is not one of the options: choose from the list, then press Check.")
    chosen, right = sorted(set(indices)), set(question.correct_indices)
    if not many:
        option = question.options[chosen[0]]
        return Result(option.correct, "correct" if option.correct else "incorrect",
                      "Correct!" if option.correct else "Not quite.", (option.feedback,))
    details = tuple(f"{_LETTERS[i]}) {question.options[i].feedback}" for i in chosen)
    wrong, missed = set(chosen) - right, right - set(chosen)
    headline = ("Correct! You ticked exactly the right options." if not wrong and not missed else
                "Not quite: some ticks are wrong, and a right option is still unticked." if wrong and missed else
                "Not quite: at least one of your ticks is wrong." if wrong else
                "Right so far, but not complete: another option is also right.")
    return Result(not wrong and not missed, "incorrect" if wrong or missed else "correct", headline, details)


def _grade_numeric(q: Question, answer, context: Mapping) -> Result:
    try:
        expected = q.expected(context)
    except MissingContext as missing:
        return Result(False, "needs_context", f"This question is about your own machine, and it needs your "
                      f"measurement `{missing.key}`: run the measurement cell above first, then run this quiz "
                      "cell again.")
    except (ValueError, TypeError) as err:  # a measurement the course functions refuse (e.g. zero)
        return Result(False, "needs_context", f"Your measurements could not be used for this question ({err}). "
                      "Run the measurement cell above again.")
    try:
        value = parse_number(answer, q.units)
    except AnswerError as err:
        return Result(False, "invalid", str(err))
    shown = _with_units(value, q.units)
    if abs(value - expected) <= _width(q, expected):
        return Result(True, "correct", f"Correct! The course's model gives {_with_units(expected, q.units)}.",
                      (q.feedback["correct"],))
    for mistake in q.mistakes:
        try:
            trap = q.expected(context, mistake["answer"])
        except (MissingContext, ValueError, TypeError):
            continue
        if abs(value - trap) <= _width(q, trap):
            return Result(False, "incorrect", f"Not quite: {shown} is a common slip.", (mistake["feedback"],))
    for power in (3, 6, 9, 12):
        if any(abs(value - expected * f) <= _width(q, expected * f) for f in (10.0**power, 10.0**-power)):
            return Result(False, "incorrect", f"Not quite: {shown} is off by a factor of 10^{power}.",
                          (f"Check your units: the answer is asked in {q.units or 'plain numbers'}.",
                           q.feedback["incorrect"]))
    word = "low" if value < expected else "high"
    return Result(False, "incorrect", f"Not quite: {shown} is too {word}.",
                  (q.feedback.get(f"too_{word}", q.feedback["incorrect"]),))


def _width(q: Question, target: float) -> float:
    """How far from ``target`` an answer may be (a hair more than the tolerance, for rounding)."""
    return max(q.tolerance.get("abs", 0.0), q.tolerance.get("rel", 0.0) * abs(target)) * (1 + 1e-12)
