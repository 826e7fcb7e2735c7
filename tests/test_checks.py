"""The learner's checks, driven from Python as a learner would: predict boxes and solutions; the quiz view
(set values, press Check, read the feedback)."""

import ipywidgets as W
import pytest

from course_lib import checks, quiz
from course_lib.checks import QuizView, markdown_to_html, reset_quizzes, show_quiz

CONTEXT = {"bandwidth": 12.4e9, "peak_flops": 95e9, "model_params": 25.2e6, "precision": "fp32",
           "ttft": 0.0421, "prompt_tokens": 256, "acceptance_rate": 0.71, "draft_length": 4,
           "sweep_context": 16, "step_time_1": 5.2e-3, "step_time_16": 7.9e-3}


def find(view, qid):
    return next(v for v in view.questions if v.question.id == qid)


def hidden(button):
    return button.layout.display == "none"


@pytest.mark.parametrize("number", quiz.notebook_ids())
def test_every_bank_builds_a_view_with_the_right_controls(number):
    view = QuizView(number)
    assert isinstance(view, W.VBox) and "cl-quiz" in view._dom_classes and "<style>" in view.children[0].value
    for qv in view.questions:
        kind = {"multiple_choice": W.RadioButtons, "many_choice": list, "numeric": W.Text}[qv.question.type]
        assert isinstance(qv.input, kind) and hidden(qv.show_button) and qv.feedback.value == ""
    assert view.score() == f"Score: 0 of {len(view.questions)} correct ({len(view.questions)} not tried yet)."
    view.close()


def test_radio_feedback_show_answer_and_score():
    view = QuizView("01")
    n = len(view.questions)
    qv = find(view, "decode-limit")
    wrong = next(i for i, o in enumerate(qv.question.options) if not o.correct)
    qv.check_button.click()  # nothing chosen: a hint, not an attempt
    assert "Choose one of the options" in qv.feedback.value and hidden(qv.show_button)
    qv.input.value = wrong
    qv.check_button.click()
    assert "cl-incorrect" in qv.feedback.value and qv.question.options[wrong].feedback[:40] in qv.feedback.value
    assert not hidden(qv.show_button) and f"0 of {n} correct ({n - 1} not tried yet)" in view.summary.value
    qv.show_button.click()
    assert "Answer:" in qv.answer.value and "answer shown for 1" in view.summary.value
    qv.input.value = qv.question.correct_indices[0]
    qv.check_button.click()
    assert "cl-correct" in qv.feedback.value and f"1 of {n} correct" in view.summary.value
    view.close()


def test_checkboxes_and_text_box():
    view = QuizView("01")
    ticks = find(view, "bound-ignores")
    ticks.input[ticks.question.correct_indices[0]].value = True
    ticks.check_button.click()
    assert "not complete" in ticks.feedback.value
    box = find(view, "tps-13b")
    assert "tokens/s" in box.box.children[2].children[1].value  # the unit beside the box
    for text, words in [("1,15", "without commas"), ("1e", "exponent"), ("115 apples", "just the number")]:
        box.input.value = text
        box.check_button.click()
        assert words in box.feedback.value and "cl-info" in box.feedback.value and hidden(box.show_button)
    box.input.value = "1.15e2"
    box.check_button.click()
    assert "Correct" in box.feedback.value and "115 tokens/s" in box.feedback.value
    view.close()


def test_measured_question_without_and_with_the_measurement():
    missing = find(QuizView("03"), "ridge-yours")
    assert "Run the measurement cell above first" in missing.note.value
    assert "[your measured peak_flops]" in missing.prompt.value
    missing.input.value = "7.7"
    missing.check_button.click()
    assert "run the measurement cell above first" in missing.feedback.value and hidden(missing.show_button)
    measured = find(QuizView("03", CONTEXT), "ridge-yours")
    assert "95 GFLOP/s" in measured.prompt.value and "12.4 GB/s" in measured.prompt.value
    measured.input.value = "7.66"
    measured.check_button.click()
    assert "Correct" in measured.feedback.value


def test_start_again_and_reset_quizzes_clear_every_live_view():
    views = [QuizView("01"), QuizView("04")]
    closed = QuizView("02")
    closed.close()
    for view in views:
        qv = next(v for v in view.questions if v.question.type == "multiple_choice")
        qv.input.value = 0
        qv.check()
        qv.show_answer()
        assert qv.feedback.value and qv.answer.value and "answer shown for 1" in view.summary.value
    assert closed not in QuizView.live
    assert reset_quizzes() >= 2
    for view in views:
        assert view.score().startswith("Score: 0 of") and "answer shown" not in view.score()
        for qv in view.questions:
            assert qv.feedback.value == "" and qv.answer.value == "" and hidden(qv.show_button)
        assert all(qv.input.value is None for qv in view.questions if qv.question.type == "multiple_choice")
        view.close()


def test_plain_text_fallback_and_show_quiz(monkeypatch):
    import IPython.display

    view = QuizView("02")
    text = view._repr_mimebundle_()["text/plain"]
    assert text.startswith("Quiz 02: Prefill vs decode") and all(f"Q{n}. " in text for n in range(1, 9))
    view.close()
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    assert show_quiz("1", CONTEXT) is None
    assert len(shown) == 1 and isinstance(shown[0], QuizView) and shown[0].bank.notebook == "01"
    assert shown[0].context is CONTEXT
    with pytest.raises(ValueError, match="valid ids"):
        show_quiz("07")


def test_markdown_subset():
    assert markdown_to_html("**Answer:**\n\n- A) x < y\n- B) `z`\n\nText & more") == (
        "<p><b>Answer:</b></p><ul><li>A) x &lt; y</li><li>B) <code>z</code></li></ul><p>Text &amp; more</p>")


def test_reveal_solutions_computes_on_click():
    box = checks.reveal_solutions([lambda: "one", lambda: 1 / 0])
    button, out = box.children
    assert out.value == ""
    button.click()
    assert "one" in out.value and "run the cells above first" in out.value


def test_guess_hides_the_result_until_committed(monkeypatch):
    monkeypatch.delenv("COURSE_REVEAL", raising=False)
    shown = []
    box = checks.Guess("How many ms per token?", units="ms")
    box.reveal(lambda: shown.append(box.value))
    box.commit("seven")  # not a number: a message, still hidden
    assert not box.committed and shown == [] and "number" in box.message.value
    box.commit("-1")
    assert not box.committed
    box.commit("1,5")  # read as the quizzes read a number: 1.5 or 15? refused, never guessed
    assert not box.committed and "without commas" in box.message.value
    box.commit("7.5 ms")
    assert box.committed and box.value == 7.5 and shown == [7.5] and box.input.disabled
    box.reveal(lambda: shown.append("again"))  # after the commit, results show at once
    assert shown == [7.5, "again"]


def test_guess_choices_skip_and_test_mode(monkeypatch):
    monkeypatch.delenv("COURSE_REVEAL", raising=False)
    box = checks.Guess("Which bound?", choices=["memory", "compute"])
    box.commit(None)
    assert not box.committed and "Pick one" in box.message.value
    box.skip()
    assert box.committed and box.value is None
    monkeypatch.setenv("COURSE_REVEAL", "1")
    assert checks.Guess("x").committed
    with pytest.raises(ZeroDivisionError):  # in the test runs a broken reveal fails loudly
        checks.Guess("x").reveal(lambda: 1 / 0)


def test_a_revealed_result_leaves_nothing_more_to_display(monkeypatch):
    # the notebooks write display(guess.reveal(show)) where the reveal is not a cell's last line: under
    # COURSE_REVEAL the result is already in the cell, and what reveal returns must display as nothing
    monkeypatch.setenv("COURSE_REVEAL", "1")
    shown = []
    returned = checks.Guess("x").reveal(lambda: shown.append(1))
    assert shown == [1] and repr(returned) == "" and returned._repr_html_() == ""
