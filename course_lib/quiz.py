"""Quizzes: grading a learner's answers, their progress through a quiz, and the answer key.

Scope: what happens to an answer. The bank itself (schema, loading, validation, value specs) is
``course_lib.quiz_bank``, whose public names this module re-exports; the widget is
``course_lib.quiz_widget``, display only.

``grade(question, answer, context)`` is pure and never raises on a learner's answer: empty or
malformed input (``"1e"``, ``"abc"``, ``"1,5"``) comes back as a ``Result`` with status
``"invalid"`` and a friendly message (``parse_number`` reads numbers). A *measured* question
(one whose values name ``"$bandwidth"`` or another measurement of the learner's machine) takes
them from the ``context`` mapping. ``Quiz`` keeps the only state (the latest result of each
question); ``load_bank("01")`` starts a fresh one.

Instructors: ``answer_key("01")`` (or ``python -m course_lib quiz --answers 01``) prints a
notebook's answers and explanations as Markdown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real

from .quiz_bank import (
    _PLACEHOLDER,  # noqa: F401 - used by tests/test_quiz.py
    NOTEBOOKS,
    QUESTION_TYPES,
    SCHEMA_VERSION,
    UNITS,
    Bank,
    MissingContext,
    Mistake,
    Option,
    Question,
    _as_context,
    _refs,  # noqa: F401 - used by tests/test_quiz.py
    _tolerance_width,
    _unit_scale,
    _with_units,
    format_number,
    normalize_notebook_id,
    notebook_ids,
    read_bank,
    validate_bank,
)

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

# What a learner may type after a number besides the question's own unit.
_UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "×": ("x", "times"),
    "tokens/s": ("tok/s", "tokens per second", "token/s"),
    "tokens": ("token",),
    "ms": ("milliseconds", "millisecond"),
    "FLOP/byte": ("FLOP/B", "FLOPs/byte", "flops/byte"),
    "GPUs": ("GPU",),
}

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_KINDS = {"multiple_choice": "one answer", "many_choice": "one or more answers", "numeric": "numeric"}


class AnswerError(ValueError):
    """A learner's answer that cannot be read; ``str(err)`` is a friendly message for them."""


# ============================================================================ results and quiz state
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
class Quiz(Bank):
    """A notebook's bank plus the learner's progress (the latest graded result per question)."""

    results: dict[str, Result] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    revealed: set[str] = field(default_factory=set)

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
        lines = [f"Quiz {self.notebook}: {self.title} ({len(self.questions)} questions)", ""]
        for number, q in enumerate(self.questions, 1):
            lines.append(f"Q{number}. {q.text(context)}")
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
            kind = _KINDS[q.type]
            if q.measured:
                kind += ", measured on the learner's machine"
            out.append(f"## Q{number} `{q.id}` ({kind})")
            out.append("")
            out.append(q.text(ctx))
            out.append("")
            for letter, option in zip(_LETTERS, q.options):
                mark = "**right**" if option.correct else "wrong"
                out.append(f"- {letter}) {option.text} — {mark}: {option.feedback}")
            if q.options:
                out.append("")
            out.append(_answer_text(q, ctx))
            out.append("")
        return "\n".join(out).rstrip() + "\n"


def parse_bank(data, source: str = "<bank>") -> Quiz:
    """A fresh Quiz on a bank given as parsed JSON (validated by ``quiz_bank.validate_bank``)."""
    return _fresh(validate_bank(data, source))


def load_bank(notebook_id) -> Quiz:
    """A fresh Quiz (no attempts) on a notebook's bank (read by ``quiz_bank.read_bank``)."""
    return _fresh(read_bank(notebook_id))


def answer_key(notebook_id, context: Mapping | None = None) -> str:
    """The answer key of a notebook's quiz as Markdown (for ``python -m course_lib quiz --answers``)."""
    return load_bank(notebook_id).answer_key(context)


def _fresh(bank: Bank) -> Quiz:
    return Quiz(notebook=bank.notebook, title=bank.title, questions=bank.questions, source=bank.source)


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
    if text is None:
        text = ""
    if isinstance(text, Real) and not isinstance(text, bool):
        value = float(text)
        if not math.isfinite(value):
            raise AnswerError("Please type a finite number.")
        return value
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


def _within(value: float, expected: float, tolerance: Mapping) -> bool:
    return abs(value - expected) <= _tolerance_width(tolerance, expected) * (1 + 1e-12)


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
    indices = [_option_index(q, choice) for choice in chosen_raw]
    if None in indices:
        return _invalid("That is not one of the options: tick some of them, then press Check.")
    chosen = sorted(set(indices))
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
            trap = q.in_units(mistake.answer, context)
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


# ============================================================================ answer key text
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
