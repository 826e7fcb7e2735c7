"""The ipywidgets front end of a quiz. Display only: every answer is graded by ``quiz.grade``
(through ``Quiz.check``), and the score lives in the ``Quiz`` object.

In a notebook::

    from course_lib.quiz_widget import show_quiz
    show_quiz("01", context={"bandwidth": profile_bandwidth, ...})

Each question gets its controls (radio buttons, tick boxes, or a text box with the unit beside it),
a **Check** button, feedback that says why the answer is right or wrong, and a **Show answer**
button after the first real attempt. A score line under the quiz updates on every check.

Where widgets cannot render (a viewer without the widget manager, an exported page), the same
output carries the quiz as plain text, so the questions are still shown.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from . import quiz as _quiz

__all__ = ["QuestionView", "QuizView", "markdown_to_html", "quiz_view", "show_quiz"]

try:
    import ipywidgets as W
except ImportError:  # the quiz still prints as text
    W = None

# Scoped to .cl-quiz: long option texts wrap instead of being cut off (ipywidgets keeps radio and
# checkbox labels on one line), and feedback boxes are coloured.
_CSS = """<style>
.cl-quiz .widget-radio-box label, .cl-quiz .jupyter-widget-radio-box label,
.cl-quiz .widget-checkbox label, .cl-quiz .jupyter-widget-checkbox label {
  height: auto; line-height: 1.4; white-space: normal; overflow: visible; padding: 3px 0; }
.cl-quiz .widget-radio-box label, .cl-quiz .jupyter-widget-radio-box label {
  display: flex; flex-direction: row-reverse; justify-content: flex-end; align-items: baseline; }
.cl-quiz .widget-checkbox label, .cl-quiz .jupyter-widget-checkbox label {
  display: flex; align-items: baseline; }
.cl-quiz .widget-radio-box input, .cl-quiz .jupyter-widget-radio-box input,
.cl-quiz .widget-checkbox input, .cl-quiz .jupyter-widget-checkbox input {
  flex: none; height: auto; float: none; align-self: baseline; }
.cl-quiz .widget-checkbox, .cl-quiz .jupyter-widget-checkbox { height: auto; width: auto; }
.cl-quiz .widget-radio-box, .cl-quiz .jupyter-widget-radio-box { margin-bottom: 0 !important; }
.cl-quiz .widget-html-content, .cl-quiz .jupyter-widget-html-content { line-height: 1.45; }
.cl-quiz .cl-box { padding: 6px 10px; margin: 4px 0; border-left: 4px solid; border-radius: 3px; }
.cl-quiz .cl-correct { border-color: #2e7d32; background: rgba(46, 125, 50, 0.10); }
.cl-quiz .cl-incorrect { border-color: #c62828; background: rgba(198, 40, 40, 0.08); }
.cl-quiz .cl-info { border-color: #1565c0; background: rgba(21, 101, 192, 0.08); }
.cl-quiz .cl-answer { border-color: #6a1b9a; background: rgba(106, 27, 154, 0.07); }
.cl-quiz .cl-question { margin-top: 14px; }
.cl-quiz p, .cl-quiz ul { margin: 2px 0; }
</style>"""

_STYLE = {
    "correct": ("cl-correct", "✔"),
    "incorrect": ("cl-incorrect", "✘"),
    "invalid": ("cl-info", "ℹ"),
    "needs_context": ("cl-info", "ℹ"),
}


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
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append("<p>" + "<br>".join(_inline(line) for line in lines) + "</p>")
    return "".join(blocks)


def _result_html(result: _quiz.Result) -> str:
    css, mark = _STYLE[result.status]
    details = "".join(f"<p>{_inline(d)}</p>" for d in result.details)
    return f'<div class="cl-box {css}"><p><b>{mark} {_inline(result.headline)}</b></p>{details}</div>'


# ---------------------------------------------------------------------------- widgets
class QuestionView:
    """The controls of one question. ``input`` is the RadioButtons, the list of Checkboxes, or
    the Text box; ``check_button``, ``show_button``, ``feedback`` and ``answer`` are public so
    tests (and curious learners) can drive them."""

    def __init__(self, quiz: _quiz.Quiz, question: _quiz.Question, number: int,
                 context: Mapping | None = None, on_change=None):
        self.quiz, self.question, self.context = quiz, question, context
        self._on_change = on_change or (lambda: None)
        q = question
        self.prompt = W.HTML(markdown_to_html(f"**Q{number}.** {q.text(context)}"))
        if q.type == "multiple_choice":
            self.input = W.RadioButtons(options=[(o.text, i) for i, o in enumerate(q.options)],
                                        value=None, layout=W.Layout(width="auto"))
            control = self.input
        elif q.type == "many_choice":
            self.input = [W.Checkbox(value=False, description=o.text, indent=False,
                                     layout=W.Layout(width="auto")) for o in q.options]
            control = W.VBox(self.input)
        else:
            self.input = W.Text(value="", placeholder="a number, e.g. 115 or 1.4e2",
                                layout=W.Layout(width="16em"))
            control = W.HBox([self.input, W.HTML(f"&nbsp;{html.escape(q.units)}")])
        self.check_button = W.Button(description="Check", button_style="primary",
                                     tooltip="Grade your answer")
        self.show_button = W.Button(description="Show answer", tooltip="Reveal the answer and why",
                                    layout=W.Layout(display="none"))
        self.feedback = W.HTML("")
        self.answer = W.HTML("")
        self.note = W.HTML(self._context_note())
        self.check_button.on_click(self.check)
        self.show_button.on_click(self.show_answer)
        self.box = W.VBox([self.prompt, self.note, control,
                           W.HBox([self.check_button, self.show_button]), self.feedback, self.answer])
        self.box.add_class("cl-question")

    def _context_note(self) -> str:
        q, ctx = self.question, _quiz._as_context(self.context)
        missing = [k for k in q.context_keys if ctx.get(k) is None]
        if not q.measured:
            return ""
        if missing:
            names = ", ".join(f"<code>{html.escape(k)}</code>" for k in missing)
            return (f'<div class="cl-box cl-info">ℹ This question is about your own machine. '
                    f"Run the measurement cell above first (it provides {names}), "
                    f"then run this quiz cell again.</div>")
        return '<p><i>This question uses your own measurements.</i></p>'

    def current_answer(self):
        """What the learner has chosen or typed, in the form ``quiz.grade`` takes."""
        if self.question.type == "multiple_choice":
            return self.input.value
        if self.question.type == "many_choice":
            return [i for i, box in enumerate(self.input) if box.value]
        return self.input.value

    def check(self, _button=None) -> _quiz.Result:
        result = self.quiz.check(self.question.id, self.current_answer(), self.context)
        self.feedback.value = _result_html(result)
        if result.attempted:
            self.show_button.layout.display = None  # visible from the first real attempt on
        self._on_change()
        return result

    def show_answer(self, _button=None) -> None:
        text = self.quiz.reveal(self.question.id, self.context)
        self.answer.value = f'<div class="cl-box cl-answer">{markdown_to_html(text)}</div>'
        self._on_change()

    def clear(self) -> None:
        if self.question.type == "multiple_choice":
            self.input.value = None
        elif self.question.type == "many_choice":
            for box in self.input:
                box.value = False
        else:
            self.input.value = ""
        self.feedback.value = self.answer.value = ""
        self.show_button.layout.display = "none"


if W is not None:
    class QuizView(W.VBox):
        """A whole quiz: a header, one block per question, the score line, a reset button.

        Its plain-text form (what a front end without widgets shows) is the full quiz text.
        """

        def __init__(self, quiz: _quiz.Quiz, context: Mapping | None = None):
            questions = [QuestionView(quiz, q, n, context, on_change=self._update_score)
                         for n, q in enumerate(quiz.questions, 1)]
            header = W.HTML(f"{_CSS}<h3>Quiz: {html.escape(quiz.title)}</h3>"
                            f"<p>{len(quiz)} questions. Choose or type an answer, then press "
                            "<b>Check</b>. Nothing is recorded outside this notebook.</p>")
            self.summary = W.HTML("")
            self.reset_button = W.Button(description="Start again", tooltip="Clear every answer")
            super().__init__(children=[header, *(v.box for v in questions),
                                       W.HBox([self.summary, self.reset_button])])
            self.add_class("cl-quiz")
            self.quiz, self.context, self.questions = quiz, context, questions
            self.reset_button.on_click(self.reset)
            self._update_score()

        def _update_score(self) -> None:
            self.summary.value = f"<p><b>{html.escape(str(self.quiz.score()))}</b>&nbsp;&nbsp;</p>"

        def reset(self, _button=None) -> None:
            self.quiz.reset()
            for view in self.questions:
                view.clear()
            self._update_score()

        def __repr__(self) -> str:
            return self.quiz.text(self.context)

        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs) or {}
            data["text/plain"] = self.quiz.text(self.context)  # full text, not cut at 110 chars
            return data
else:  # pragma: no cover - ipywidgets is a course dependency
    QuizView = None


def quiz_view(notebook_id, context: Mapping | None = None):
    """A fresh QuizView for a notebook (a widget: the last line of a cell displays it)."""
    if W is None:
        raise ImportError("ipywidgets is not installed: use show_quiz(), which prints the quiz as text")
    return QuizView(_quiz.load_bank(notebook_id), context)


def show_quiz(notebook_id, context: Mapping | None = None) -> None:
    """Display a notebook's quiz. ``context`` holds the learner's measurements for the measured
    questions (keys in docs/QUIZ_SCHEMA.md); without it those questions ask for the measurement.
    Without ipywidgets, prints the questions as plain text."""
    if W is None:
        print(_quiz.load_bank(notebook_id).text(context))
        return
    from IPython.display import display

    display(quiz_view(notebook_id, context))
