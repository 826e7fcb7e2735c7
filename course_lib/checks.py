"""The learner's checks: predict boxes (``Guess``: commit a guess before a measurement shows), exercise
solutions behind a button, and the quizzes ``quiz`` grades: their ipywidgets view, their plain text (for
front ends without widgets) and answer keys (``answer_key``: Markdown for instructors, ``python -m course_lib quiz``).

``show_quiz("01", context={"bandwidth": ..., ...})`` in a notebook: per question its controls, **Check**,
feedback saying why, and **Show answer** after the first real attempt. **Start again** clears one quiz,
``reset_quizzes()`` every quiz in the kernel (between workshop groups). Nothing is stored on disk.
"""

from __future__ import annotations

import html
import os
import re
import weakref
from collections.abc import Callable, Mapping
from importlib import resources
from string import ascii_uppercase as LETTERS

import ipywidgets as W

from . import perf, quiz

_STYLE = {"correct": ("cl-correct", "✔"), "incorrect": ("cl-incorrect", "✘")}  # other statuses: information
_CSS = f"<style>{resources.files('course_lib').joinpath('data/quiz.css').read_text('utf-8')}</style>"


# ---------------------------------------------------------------------------- text -> HTML
def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def markdown_to_html(text: str) -> str:
    """The small Markdown subset of quiz texts: paragraphs, ``- `` lists, **bold**, `code`."""
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if lines and all(line.startswith("- ") for line in lines):
            blocks.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>")
        else:
            blocks.append("<p>" + "<br>".join(_inline(line) for line in lines) + "</p>")
    return "".join(blocks)


def quiz_text(bank: quiz.Bank, context: Mapping | None = None) -> str:
    """The whole quiz as plain text: what a front end without widgets shows."""
    lines = [f"Quiz {bank.notebook}: {bank.title} ({len(bank.questions)} questions)", ""]
    for number, q in enumerate(bank.questions, 1):
        lines.append(f"Q{number}. {q.text(context)}")
        lines += [f"   {letter}) {o.text}" for letter, o in zip(LETTERS, q.options, strict=False)]
        lines += [f"   Answer in {q.units}."] if q.type == "numeric" else []
        lines.append("")
    lines.append("(Checking answers needs the interactive widgets: open the notebook in JupyterLab.)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- predict boxes
def reveal_solutions(solutions) -> W.Widget:
    """A button that reveals exercise solutions. Each solution is a callable returning text, so
    its numbers are computed (by course_lib) when revealed, never typed in."""
    button, out = W.Button(description="Show solutions", button_style="info"), W.HTML()

    def show(_):
        items = []
        for solution in solutions:
            try:
                items.append(html.escape(solution()))
            except Exception as err:  # e.g. a measurement cell above was not run
                items.append(f"(run the cells above first: {html.escape(str(err))})")
        out.value = "<br>".join(items)
        button.layout.display = "none"

    button.on_click(show)
    return W.VBox([button, out])


class Guess(W.VBox):
    """A predict box: the learner commits a guess (a number, or one of ``choices``) before a
    measurement. ``reveal(show)``, called in the measuring cell, returns the place the result
    appears: ``show()`` runs there only after "Commit" or "Skip", so the answer cannot be seen
    first. ``value``: the committed guess, None if skipped. With COURSE_REVEAL=1 (the test runs, the static site)
    results show at once, straight in the cell's output, as if the learner had skipped."""

    def __init__(self, prompt: str, units: str = "", choices=None):
        self.units, self.value, self.committed, self._pending = units, None, False, []
        if choices:
            self.input = W.RadioButtons(options=list(choices), value=None, layout=W.Layout(width="auto"))
        else:
            self.input = W.Text(placeholder=f"your guess{f' in {units}' if units else ''}", layout=W.Layout(width="200px"))
        commit, skip = W.Button(description="Commit my guess", button_style="primary"), W.Button(description="Skip")
        commit.on_click(lambda _: self.commit(self.input.value))
        skip.on_click(lambda _: self.skip())
        self._buttons, self.message = (commit, skip), W.HTML()
        super().__init__([W.HTML(f"<b>Predict:</b> {prompt}"), W.HBox([self.input, commit, skip]), self.message])
        if _reveal_all():
            self.skip()

    def commit(self, answer) -> None:
        """Take ``answer`` as the guess; a missing or bad one gets a message, never an exception."""
        try:
            self.value = self._read(answer)
        except ValueError as err:  # quiz.AnswerError too: it says what to type instead
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self._close(f"Your guess: <b>{html.escape(str(self.value))} {html.escape(self.units)}</b>")

    def skip(self) -> None:
        """Go on without a guess (``value`` stays None)."""
        self._close("Skipped: no guess.")

    def _close(self, message: str) -> None:
        """Lock the box, say what was committed and show the results that waited for it."""
        self.committed, self.message.value = True, message
        for control in (self.input, *self._buttons):
            control.disabled = True
        for show, out in self._pending:
            out.clear_output()  # the "commit your guess" line
            _show_in(out, show)
        self._pending.clear()

    def _read(self, answer):
        """The guess to commit: a choice, or a number ≥ 0 read as the quizzes read one (no commas)."""
        if isinstance(self.input, W.RadioButtons):
            if answer is None:
                raise ValueError("Pick one of the options first.")
            return answer
        number = quiz.parse_number(answer, self.units)
        if number < 0:
            raise ValueError("A guess here is never negative: type a number ≥ 0.")
        return number

    def reveal(self, show: Callable[[], object]) -> W.Output | _Shown:
        """Where the result appears: ``show()`` (which displays it) runs there now if a guess is
        committed, else as soon as one is."""
        if _reveal_all():  # test runs and the static site: straight into the cell, where a static page shows it
            show()
            return _SHOWN
        out = W.Output()
        if self.committed:
            _show_in(out, show)
        else:
            self._pending.append((show, out))
            with out:
                print("The result is ready: commit your guess (or skip) in the Predict box above to see it.")
        return out


class _Shown:  # what reveal returns when the result is already in the cell: display() of it shows nothing
    _repr_html_ = __repr__ = lambda self: ""  # noqa: E731


_SHOWN = _Shown()


def _reveal_all() -> bool:
    return os.environ.get("COURSE_REVEAL", "").strip().lower() in ("1", "true", "yes", "on")


def _show_in(out: W.Output, show) -> None:
    with out:
        try:
            show()
        except Exception as err:  # a widget callback must never kill the kernel
            print(f"Could not show the result: {err}")


# ---------------------------------------------------------------------------- answer keys
def answer_key(notebook_id, context: Mapping | None = None) -> str:
    """Every question of a notebook's quiz with its answer and explanation, as Markdown (instructors)."""
    bank = quiz.load_bank(notebook_id)
    kinds = {"multiple_choice": "one answer", "many_choice": "one or more answers", "numeric": "numeric"}
    skills = ", ".join(f"{sum(q.skill == s for q in bank.questions)} {s}" for s in ("compute", "interpret", "transfer"))
    out = [f"# Answer key, quiz {bank.notebook}: {bank.title}", "", f"Questions by skill: {skills} (compute: apply "
           "a formula; interpret: read a plot or a measurement; transfer: a new device, design or situation).", ""]
    for number, q in enumerate(bank.questions, 1):
        kind = kinds[q.type] + (", measured on the learner's machine" if q.context_keys else "")
        out += [f"## Q{number} `{q.id}` ({kind}; skill: {q.skill})", "", q.text(context), ""]
        out += [f"- {letter}) {o.text} — {'**right**' if o.correct else 'wrong'}: {o.feedback}"
                for letter, o in zip(LETTERS, q.options)] + ([""] if q.options else [])
        out += [answer_text(q, context), ""]
    return "\n".join(out).rstrip() + "\n"


def _describe(spec) -> str:
    """A value spec as a short formula (the answer key of a measured question): ``f(x=your measured `x`)``."""
    if isinstance(spec, Mapping):
        args = spec["args"] if "fn" in spec else {k: v for k, v in spec.items() if k != "hardware"}
        return f"{spec.get('fn') or spec['hardware']}({', '.join(f'{k}={_describe(v)}' for k, v in args.items())})"
    if isinstance(spec, str):
        return f"your measured `{spec[1:]}`" if spec.startswith("$") else repr(spec)
    return perf.format_number(spec, digits=4)


def answer_text(q: quiz.Question, context: Mapping | None = None) -> str:
    """Markdown: the right answer of one question and its explanation (the key, "Show answer")."""
    if q.type != "numeric":
        right = "\n".join(f"- {LETTERS[i]}) {q.options[i].text}" for i in q.correct_indices)
        return f"**Answer:**\n\n{right}\n\n{q.explanation}"
    try:
        expected = q.expected(context)
    except quiz.MissingContext:  # the formula, for the learner's own measurements
        scale = quiz.UNITS.get(q.units, 1.0)
        factor = f" × {perf.format_number(1 / scale)}" if scale < 1 else f" / {perf.format_number(scale)}" if scale > 1 else ""
        return f"**Answer: {_describe(q.answer)}{factor}** in {q.units} (depends on the learner's measurements)" \
               f"\n\n{q.explanation}"
    width = quiz.accepted_width(q, expected)
    accepted = (f"exactly {perf.format_number(expected, q.units)}" if width == 0 else
                f"from {perf.format_number(expected - width)} to {perf.format_number(expected + width, q.units)}")
    return f"**Answer: ≈ {perf.format_number(expected, q.units)}** (accepted: {accepted})\n\n{q.explanation}"


# ---------------------------------------------------------------------------- widgets
class QuestionView:
    """One question's controls and the learner's progress on it. ``input`` (RadioButtons, a list of
    Checkboxes or a Text box) and the buttons are public, so tests can drive them as a learner would."""

    def __init__(self, question: quiz.Question, number: int, context: Mapping | None, on_change: Callable[[], None]):
        self.question, self.context, self._on_change = question, context, on_change
        self.result: quiz.Result | None = None  # the latest real attempt
        self.revealed = False
        self.prompt = W.HTML(markdown_to_html(f"**Q{number}.** {question.text(context)}"))
        if question.type == "multiple_choice":
            self.input = W.RadioButtons(options=[(o.text, i) for i, o in enumerate(question.options)], value=None,
                                        layout=W.Layout(width="auto"))
            control = self.input
        elif question.type == "many_choice":
            self.input = [W.Checkbox(value=False, description=o.text, indent=False, layout=W.Layout(width="auto"))
                          for o in question.options]
            control = W.VBox(self.input)
        else:
            self.input = W.Text(value="", placeholder="a number, e.g. 115 or 1.4e2", layout=W.Layout(width="16em"))
            control = W.HBox([self.input, W.HTML(f"&nbsp;{html.escape(question.units)}")])
        self.check_button = W.Button(description="Check", button_style="primary", tooltip="Grade your answer")
        self.show_button = W.Button(description="Show answer", tooltip="Reveal the answer and why",
                                    layout=W.Layout(display="none"))
        self.feedback, self.answer, self.note = W.HTML(""), W.HTML(""), W.HTML(self._context_note())
        self.check_button.on_click(self.check)
        self.show_button.on_click(self.show_answer)
        self.box = W.VBox([self.prompt, self.note, control, W.HBox([self.check_button, self.show_button]),
                           self.feedback, self.answer])
        self.box.add_class("cl-question")

    def _context_note(self) -> str:
        keys = self.question.context_keys
        missing = [k for k in keys if (self.context or {}).get(k) is None]
        if missing:
            names = ", ".join(f"<code>{html.escape(k)}</code>" for k in missing)
            return (f'<div class="cl-box cl-info">ℹ This question is about your own machine. Run the measurement '
                    f"cell above first (it provides {names}), then run this quiz cell again.</div>")
        return "<p><i>This question uses your own measurements.</i></p>" if keys else ""

    def check(self, _button=None) -> quiz.Result:
        """Grade the answer in the controls and show why (the **Check** button)."""
        many = self.question.type == "many_choice"
        answer = [i for i, box in enumerate(self.input) if box.value] if many else self.input.value
        result = quiz.grade(self.question, answer, self.context)
        css, mark = _STYLE.get(result.status, ("cl-info", "ℹ"))
        details = "".join(f"<p>{_inline(d)}</p>" for d in result.details)
        self.feedback.value = f'<div class="cl-box {css}"><p><b>{mark} {_inline(result.headline)}</b></p>{details}</div>'
        if result.attempted:
            self.result = result
            self.show_button.layout.display = None  # visible from the first real attempt on
        self._on_change()
        return result

    def show_answer(self, _button=None) -> None:
        """Show the right answer and its explanation (the **Show answer** button)."""
        text = answer_text(self.question, self.context)
        self.answer.value = f'<div class="cl-box cl-answer">{markdown_to_html(text)}</div>'
        self.revealed = True
        self._on_change()

    def clear(self) -> None:
        """Back to unanswered: no choice, no feedback, no answer shown."""
        if self.question.type == "many_choice":
            for box in self.input:
                box.value = False
        else:
            self.input.value = None if self.question.type == "multiple_choice" else ""
        self.feedback.value = self.answer.value = ""
        self.show_button.layout.display = "none"
        self.result, self.revealed = None, False


class QuizView(W.VBox):
    """A notebook's quiz (``notebook_id`` as ``quiz.load_bank`` reads it): a header, one block per question,
    the score line, a **Start again** button. A widget: the last line of a cell displays it."""

    live: weakref.WeakSet[QuizView] = weakref.WeakSet()  # views not yet closed, for reset_quizzes()

    def __init__(self, notebook_id, context: Mapping | None = None):
        self.bank, self.context = quiz.load_bank(notebook_id), context
        questions = self.bank.questions
        self.questions = [QuestionView(q, n, context, on_change=self._update_score) for n, q in enumerate(questions, 1)]
        header = W.HTML(f"{_CSS}<h3>Quiz: {html.escape(self.bank.title)}</h3><p>{len(questions)} questions. Choose "
                        "or type an answer, then press <b>Check</b>. Nothing is recorded outside this notebook.</p>")
        self.summary = W.HTML("")
        self.reset_button = W.Button(description="Start again", tooltip="Clear every answer")
        super().__init__(children=[header, *(v.box for v in self.questions),
                                   W.HBox([self.summary, self.reset_button])])
        self.add_class("cl-quiz")
        self.reset_button.on_click(self.reset)
        self._update_score()
        QuizView.live.add(self)

    def score(self) -> str:
        """``"Score: 1 of 9 correct (8 not tried yet); answer shown for 1."``"""
        results = [v.result for v in self.questions if v.result is not None]
        total, tried = len(self.questions), len(results)
        text = f"Score: {sum(r.correct for r in results)} of {total} correct"
        text += f" ({total - tried} not tried yet)" if tried < total else ""
        shown = sum(v.revealed for v in self.questions)
        return text + (f"; answer shown for {shown}" if shown else "") + "."

    def _update_score(self) -> None:
        self.summary.value = f"<p><b>{html.escape(self.score())}</b>&nbsp;&nbsp;</p>"

    def reset(self, _button=None) -> None:
        """Clear every answer, feedback and the score (the **Start again** button)."""
        for view in self.questions:
            view.clear()
        self._update_score()

    def close(self) -> None:
        QuizView.live.discard(self)
        super().close()

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = quiz_text(self.bank, self.context)  # the whole quiz, not cut at 110 characters
        return data


def reset_quizzes() -> int:
    """Clear every quiz shown in this kernel, as if each one's **Start again** was pressed; returns
    how many. For workshops, between groups. Restarting the kernel clears them too."""
    views = list(QuizView.live)
    for view in views:
        view.reset()
    return len(views)


def show_quiz(notebook_id, context: Mapping | None = None) -> None:
    """Display a notebook's quiz. ``context`` holds the learner's measurements for the measured
    questions (keys in docs/QUIZ_SCHEMA.md); without them those questions ask for the measurement."""
    from IPython.display import display

    display(QuizView(notebook_id, context))
