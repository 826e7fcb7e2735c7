"""Quizzes: the banks (data/quizzes/NN.json, docs/QUIZ_SCHEMA.md) and grading (answer keys: checks.py).

Numeric answers are never typed into a bank: each names a course formula and its arguments,
``{"fn": "perf.decode_time", "args": {...}}``, so the quiz changes when ``perf`` does; ``"$bandwidth"``
is a learner's own measurement, from ``context``. ``load_bank`` checks a bank against the schema and
computes every value, so a broken bank fails in the tests, never in front of a learner. ``grade`` is
pure and never raises on a learner's answer. No torch, no ipywidgets (see ``checks``).
"""

from __future__ import annotations

import json
import math
import re
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from numbers import Real
from string import ascii_uppercase as LETTERS

import jsonschema

from . import explain, perf, serving, specs


class MissingContext(LookupError):
    """A measured question needs a measurement (``err.key``) that the context lacks."""
    key = property(lambda self: self.args[0])


def _recorded_batching(batch: int, quantity: str):
    """The recorded GPU run's sweep at its shortest context: that context_len, or batching_claim's ``quantity``."""
    if (ref := specs.load_reference()) is None:
        raise MissingContext("recorded_run")
    context_len, claim = min(explain.batching_claim(ref["batch_sweep"], batch).items())
    return context_len if quantity == "context_len" else claim[quantity]


# Functions a bank may call: perf's and serving's formulas (not perf's table builder), arithmetic, the recorded run.
FUNCTIONS = {f"{module.__name__.rsplit('.', 1)[1]}.{name}": getattr(module, name) for module in (perf, serving)
             for name in module.__all__ if name != "decode_table"}
FUNCTIONS.update({"math.div": lambda a, b: perf.check_number("a", a) / perf.check_positive("b", b),
                  "math.mul": lambda a, b: perf.check_number("a", a) * perf.check_number("b", b),
                  "math.sub": lambda a, b: perf.check_number("a", a) - perf.check_number("b", b),
                  "math.round": lambda a: round(perf.check_number("a", a)), "recorded.batching": _recorded_batching})
# Display unit -> its size in SI. Course functions return SI values; a question asked in one of these
# units is converted ("ms": seconds / 1e-3). Other units ("tokens/s", "FLOP/byte") are taken as they are.
UNITS = {"B": 1.0, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30,
         "B/s": 1.0, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12, "FLOP": 1.0, "GFLOP": 1e9, "TFLOP": 1e12,
         "FLOP/s": 1.0, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6,
         "thousand": 1e3, "million": 1e6, "billion": 1e9, "%": 1e-2}
# What a learner may type after a number besides the question's own unit.
_UNIT_ALIASES = {"×": ("x", "times"), "tokens/s": ("tok/s", "token/s", "tokens per second"), "tokens": ("token",),
                 "ms": ("milliseconds", "millisecond"), "FLOP/byte": ("FLOP/B", "FLOPs/byte"), "GPUs": ("GPU",)}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)(?::([^{}]+))?\}")  # {name} or {name:unit}
# A plausible learner's measurements (docs/QUIZ_SCHEMA.md): loading a bank computes measured values with them.
_SAMPLE_CONTEXT = {"bandwidth": 12.4e9, "peak_flops": 95e9, "model_params": 25.2e6, "precision": "fp32", "ttft": 0.150,
                   "prompt_tokens": 256, "acceptance_rate": 0.71, "draft_length": 3, "sweep_context": 16,
                   "step_time_1": 5.2e-3, "step_time_16": 7.9e-3}
_DATA = resources.files("course_lib").joinpath("data")
_SCHEMA = jsonschema.Draft202012Validator(json.loads(_DATA.joinpath("quiz.schema.json").read_text("utf-8")))


# ============================================================================ values
def _refs(spec) -> list[str]:
    """The measurements ("$name" strings) that a value spec uses, in the arguments of its calls too."""
    return re.findall(r'"\$(\w+)"', json.dumps(spec))


def _resolve(spec, context: Mapping):
    """The value of a spec: a number or string as it is, a measurement, a catalogue figure or a call."""
    if isinstance(spec, str) and spec.startswith("$"):
        if context.get(spec[1:]) is None:
            raise MissingContext(spec[1:])
        return context[spec[1:]]
    if isinstance(spec, Mapping) and "hardware" in spec:
        device = specs.get(spec["hardware"])
        return getattr(device, spec["attr"]) if "attr" in spec else device.peak_flops(spec["peak_flops"])
    if isinstance(spec, Mapping):
        if spec["fn"] not in FUNCTIONS:
            raise ValueError(f"unknown function {spec['fn']!r}; banks may call math.*, perf.*, serving.*, recorded.*")
        return FUNCTIONS[spec["fn"]](**{k: _resolve(v, context) for k, v in spec["args"].items()})
    return spec


# ============================================================================ the bank
Option = namedtuple("Option", "text correct feedback")  # str, bool (is it right?), str


@dataclass(frozen=True, eq=False)
class Question:
    """One question (docs/QUIZ_SCHEMA.md). Values are resolved when needed: before any measurement too."""

    id: str
    type: str  # multiple_choice, many_choice or numeric
    skill: str  # compute, interpret or transfer
    question: str  # its {placeholders} are filled by text(context); those of the other texts at loading
    explanation: str
    options: tuple[Option, ...] = ()
    answer: Mapping | None = None  # numeric only, as are the fields up to mistakes
    units: str = ""
    tolerance: Mapping = field(default_factory=dict)  # {"rel": r} and/or {"abs": a}
    feedback: Mapping = field(default_factory=dict)  # correct, incorrect, and optionally too_low, too_high
    mistakes: tuple[Mapping, ...] = ()  # {"answer": a spec, "feedback": text}
    given: Mapping = field(default_factory=dict)  # placeholder name -> spec
    verify: tuple[Mapping, ...] = ()  # checked when the bank is loaded; learners never see them

    @property
    def context_keys(self) -> tuple[str, ...]:
        """The learner's measurements this question needs (empty: not a measured question)."""
        return tuple(dict.fromkeys(_refs([self.answer, self.given, [m["answer"] for m in self.mistakes]])))

    @property
    def correct_indices(self) -> tuple[int, ...]:
        return tuple(i for i, option in enumerate(self.options) if option.correct)

    def expected(self, context: Mapping | None = None, spec=None) -> float:
        """The answer (or a mistake's spec) in the question's units; MissingContext, or ValueError if refused."""
        return perf.check_number("value", _resolve(spec or self.answer, context or {})) / UNITS.get(self.units, 1.0)

    def text(self, context: Mapping | None = None, template: str | None = None) -> str:
        """The question (or ``template``, another of its texts) with its ``{placeholders}`` filled in."""
        def fill(match: re.Match) -> str:
            name, units = match.group(1), (match.group(2) or "").strip()
            try:
                value = _resolve(_placeholder(vars(self), name), context or {})
                if isinstance(value, str):  # a precision
                    return value.upper() if value.lower() in perf.PRECISIONS else value
                return perf.format_number(perf.check_number(name, value) / UNITS.get(units, 1.0), units)
            except MissingContext as missing:
                return f"[your measured {missing.key}]"
            except (ValueError, TypeError):  # a measurement the course functions refuse
                return f"[{name}: not available]"
        return _PLACEHOLDER.sub(fill, self.question if template is None else template)


def _placeholder(q: Mapping, name: str):
    """The spec that ``{name}`` shows: ``given[name]``, else that argument of ``answer``; KeyError if neither."""
    return q["given"][name] if name in (q.get("given") or {}) else (q.get("answer") or {}).get("args", {})[name]


Bank = namedtuple("Bank", "notebook title questions")  # "01", its title, a tuple of Questions


def _question_problem(q: dict) -> str | None:
    """The first problem of a schema-valid question that the schema cannot express, or None."""
    if len({o["text"] for o in q.get("options", [])}) != len(q.get("options", [])):
        return "options: two options have the same text"
    others = json.dumps({k: v for k, v in q.items() if k != "question"}, ensure_ascii=False)
    for where, text in [("question", q["question"]), ("explanation, options or feedback", others)]:
        for name, _ in _PLACEHOLDER.findall(text):
            try:
                measured = _refs(_placeholder(q, name))
            except KeyError:
                return f"{where}: {{{name}}} is neither in 'given' nor an argument of 'answer'"
            if measured and where != "question":  # those texts are filled once, when the bank is loaded
                return f"{where}: {{{name}}} is measured, and only the question's text may show a measurement"
    values = [("answer", q["answer"])] if "answer" in q else []
    values += [(f"mistakes[{i}].answer", m["answer"]) for i, m in enumerate(q.get("mistakes", []))]
    values += [(f"given.{name}", spec) for name, spec in q.get("given", {}).items()]
    values += [(f"verify[{i}]", spec) for i, spec in enumerate(q.get("verify", []))]
    for where, spec in values:  # every value spec, named by where it is
        check = where.startswith("verify")
        try:  # compute everything now, so that a broken bank never reaches a learner
            value = _resolve(spec, {} if check else _SAMPLE_CONTEXT)  # a check may not use measurements
            if where.startswith(("answer", "mistakes")):
                perf.check_number("value", value)
        except MissingContext as missing:
            return f"{where}: ${missing.key} is not a measurement it may use (docs/QUIZ_SCHEMA.md)"
        except (ValueError, TypeError) as err:
            return f"{where}: {err}"
        if check and value != spec["expect"]:
            return f"{where}: {spec['fn']} gives {value!r}, the bank expects {spec['expect']!r}"
    return None


def _build(q: dict) -> Question:
    """A checked question, the placeholders of its explanation, options and feedback filled in."""
    raw = Question(**{**q, "options": (), "mistakes": (), "verify": tuple(q.get("verify", ()))})

    def fill(text: str) -> str:
        return raw.text(template=text)
    return replace(raw, explanation=fill(raw.explanation), feedback={k: fill(v) for k, v in raw.feedback.items()},
                   options=tuple(Option(fill(o["text"]), o["correct"], fill(o["feedback"])) for o in q.get("options", ())),
                   mistakes=tuple({**m, "feedback": fill(m["feedback"])} for m in q.get("mistakes", ())))


def parse_bank(data, source: str = "<bank>") -> Bank:
    """Validate a bank (parsed JSON) and build it; ValueError names the bank, question and field."""
    relevance = jsonschema.exceptions.by_relevance()  # the deepest error first: a wrong field before a rule it breaks
    error = jsonschema.exceptions.best_match(_SCHEMA.iter_errors(data), key=lambda e: (len(e.path), relevance(e)))
    if error is not None:  # e.g. "$.questions[2].options[0].correct: 'yes' is not of type 'boolean'"
        message = error.message if len(error.message) < 200 else error.message[:197] + "..."
        rule = error.schema.get("$comment") if isinstance(error.schema, dict) else None  # the rule, in words
        raise ValueError(f"quiz bank {source}: {error.json_path}: {message}" + (f" ({rule})" if rule else ""))
    if specs.load_reference() is None:  # a course without a recorded GPU run: leave out the questions about it
        data = {**data, "questions": [q for q in data["questions"] if '"recorded.' not in json.dumps(q)]}
    for i, q in enumerate(data["questions"]):
        twice = q["id"] in [other["id"] for other in data["questions"][:i]]
        if problem := "id: used twice in this bank" if twice else _question_problem(q):
            raise ValueError(f"quiz bank {source}, question '{q['id']}': {problem}")
    return Bank(data["notebook"], data["title"], tuple(_build(q) for q in data["questions"]))


def notebook_ids() -> list[str]:
    """Ids of the notebooks that have a quiz bank: ``["00", "01", ...]``."""
    return sorted(p.name[:-5] for p in _DATA.joinpath("quizzes").iterdir() if p.name.endswith(".json"))


def load_bank(notebook_id) -> Bank:
    """A notebook's bank. ``1``, ``"01"`` and ``"notebooks/01_the_bottleneck.ipynb"`` all mean 01."""
    readable = isinstance(notebook_id, (int, str)) and not isinstance(notebook_id, bool)
    digits = re.match(r"\d+", str(notebook_id).replace("\\", "/").rsplit("/", 1)[-1].strip()) if readable else None
    number = f"{int(digits.group()):02d}" if digits else None
    if number not in notebook_ids():
        raise ValueError(f"notebook_id={notebook_id!r} has no quiz; valid ids: {', '.join(notebook_ids())}")
    return parse_bank(json.loads(_DATA.joinpath("quizzes", f"{number}.json").read_text("utf-8")), f"{number}.json")


# ============================================================================ reading a learner's number
class AnswerError(ValueError):
    """A learner's answer that cannot be read; ``str(err)`` is a friendly message for them."""


_NUMBER = re.compile(r"[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+)?")
_MALFORMED = [  # (what the learner typed, what to type instead): the first that matches
    (r".*,.*", "Please type the number without commas: a dot for decimals (2.5) and no thousands separator (1000, "
     "or 1e3)."),
    (r"[+-]?[\d.]+[eE][+-]?", "“{s}” is missing its exponent: write 1e3 for 1000, or 2.5e-3 for 0.0025."),
    (r"[+-]?[\d.]+\s*[x×*]\s*10\s*\^?\s*[+-]?\d+", "Write powers of ten with an e: 1.4e2 means 1.4 × 10^2."),
    (r"[+-]?[\d.]+(?:\s+[\d.]+)+", "Please remove the spaces inside the number (type 1000, not 1 000)."),
    (r"([+-]?\.?\d[\d_.]*(?:[eE][+-]?\d+)?)\s*(?:[^\W\d_]|[%/°]).*",
     "Type just the number, without units or words{units}: for example {number}."),
]


def parse_number(text, units: str = "") -> float:
    """Read a learner's number (``143``, ``-2.5``, ``.5``, ``1.4e2``, ``1_000``, ``~143``, ``115 tokens/s``) or
    raise AnswerError saying what to type instead. Every comma is refused: ``1,5`` is 1.5 in much of Europe
    and ``1,000`` is 1000 in English; a guess would mark some learners wrong."""
    text = str(text) if isinstance(text, Real) and not isinstance(text, bool) else text  # a number: as if typed
    s = text.strip().replace("\u2212", "-").replace("\u00a0", " ").lstrip("~≈").strip() if isinstance(text, str) else ""
    if not s:
        raise AnswerError("Type a number first, for example 143 or 1.4e2.")
    for unit in sorted((units, *_UNIT_ALIASES.get(units, ())) if units else (), key=len, reverse=True):
        if s.lower().endswith(unit.lower()) and len(s) > len(unit):
            s = s[: -len(unit)].rstrip()
            break
    if _NUMBER.fullmatch(s):
        if not math.isfinite(float(s)):
            raise AnswerError("That number is too large to be a sensible answer; check the exponent.")
        return float(s)
    shown = s if len(s) <= 30 else s[:27] + "..."
    for pattern, message in _MALFORMED:
        if match := re.fullmatch(pattern, s):
            hint = f" (the answer is in {units})" if units else ""
            raise AnswerError(message.format(s=shown, units=hint, number=next(iter(match.groups()), "")))
    raise AnswerError(f"“{shown}” is not a number I can read. Type digits, such as 143, 0.5 or 1.4e2.")


# ============================================================================ grading
@dataclass(frozen=True)
class Result:
    """``status``: correct, incorrect, invalid or needs_context (those two are not attempts); text for the learner."""

    status: str
    headline: str
    details: tuple[str, ...] = ()

    correct = property(lambda self: self.status == "correct")
    attempted = property(lambda self: self.status in ("correct", "incorrect"))
    message = property(lambda self: "\n".join([self.headline, *self.details]))


def grade(question: Question, answer, context: Mapping | None = None) -> Result:
    """Grade one answer; pure, never raises on a learner's answer. ``answer``: an option's index (many_choice:
    a list of them, right if exactly the right set); numeric: a string as typed or a number, in the question's
    units, right within the tolerance (a measured question is computed from ``context``)."""
    if context is not None and not isinstance(context, Mapping):
        raise TypeError(f"context={context!r} must be a dict of measurements (docs/QUIZ_SCHEMA.md) or None")
    if question.type == "numeric":
        return _grade_numeric(question, answer, context or {})
    many = question.type == "many_choice"
    if answer is None or answer == "" or (isinstance(answer, (list, tuple, set)) and not answer):
        return Result("invalid", "Tick at least one option, then press Check." if many
                      else "Choose one of the options first, then press Check.")
    picks = list(answer) if many and isinstance(answer, (list, tuple, set)) else [answer]
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(question.options) for i in picks):
        return Result("invalid", "That is not one of the options: choose from the list, then press Check.")
    if not many:
        option = question.options[answer]
        return Result("correct" if option.correct else "incorrect", "Correct!" if option.correct else "Not quite.",
                      (option.feedback,))
    chosen = set(picks)
    wrong, missed = chosen - set(question.correct_indices), set(question.correct_indices) - chosen
    headline = ("Correct! You ticked exactly the right options." if not wrong and not missed else
                "Not quite: some ticks are wrong, and a right option is still unticked." if wrong and missed else
                "Not quite: at least one of your ticks is wrong." if wrong else
                "Right so far, but not complete: another option is also right.")
    details = tuple(f"{LETTERS[i]}) {question.options[i].feedback}" for i in sorted(chosen))
    return Result("incorrect" if wrong or missed else "correct", headline, details)


def _grade_numeric(q: Question, answer, context: Mapping) -> Result:
    try:
        expected = q.expected(context)
    except MissingContext as missing:
        return Result("needs_context", f"This question is about your own machine, and it needs your measurement "
                      f"`{missing.key}`: run the measurement cell above first, then run this quiz cell again.")
    except (ValueError, TypeError) as err:  # a measurement the course functions refuse (e.g. zero)
        return Result("needs_context", f"Your measurements could not be used for this question ({err}). "
                      "Run the measurement cell above again.")
    try:
        value = parse_number(answer, q.units)
    except AnswerError as err:
        return Result("invalid", str(err))

    def near(target: float) -> bool:
        return abs(value - target) <= accepted_width(q, target)

    shown = perf.format_number(value, q.units)
    if near(expected):
        return Result("correct", f"Correct! The course's model gives {perf.format_number(expected, q.units)}.",
                      (q.feedback["correct"],))
    for mistake in q.mistakes:
        try:
            if near(q.expected(context, mistake["answer"])):
                return Result("incorrect", f"Not quite: {shown} is a common slip.", (mistake["feedback"],))
        except (MissingContext, ValueError, TypeError):  # a mistake this context cannot compute
            continue
    for power in (3, 6, 9, 12):  # seconds typed for milliseconds, bytes for GB, ...
        if near(expected * 10.0**power) or near(expected / 10.0**power):
            return Result("incorrect", f"Not quite: {shown} is off by a factor of 10^{power}.",
                          (f"Check your units: the answer is asked in {q.units}.", q.feedback["incorrect"]))
    word = "low" if value < expected else "high"
    return Result("incorrect", f"Not quite: {shown} is too {word}.",
                  (q.feedback.get(f"too_{word}", q.feedback["incorrect"]),))


def accepted_width(q: Question, target: float) -> float:
    """How far from ``target`` an answer may be (a hair more than the tolerance, for rounding)."""
    return max(q.tolerance.get("abs", 0.0), q.tolerance.get("rel", 0.0) * abs(target)) * (1 + 1e-12)
