"""The quiz widget, driven from Python: set values, press Check, read the feedback."""

import ipywidgets as W
import pytest

from course_lib import quiz, quiz_widget
from course_lib.quiz_widget import QuizView, quiz_view, show_quiz

CONTEXT = {"bandwidth": 12.4e9, "peak_flops": 95e9, "model_params": 25.2e6, "precision": "fp32",
           "ttft": 0.0421, "prompt_tokens": 256, "acceptance_rate": 0.71, "draft_length": 4}


def view_of(number, context=None):
    return quiz_view(number, context)


def find(view, qid):
    return next(v for v in view.questions if v.question.id == qid)


def hidden(button):
    return button.layout.display == "none"


@pytest.mark.parametrize("number", quiz.notebook_ids())
def test_every_bank_builds_a_widget(number):
    view = view_of(number)
    assert isinstance(view, W.VBox) and "cl-quiz" in view._dom_classes
    assert len(view.questions) == len(view.quiz)
    for qv in view.questions:
        q = qv.question
        if q.type == "multiple_choice":
            assert isinstance(qv.input, W.RadioButtons) and qv.input.value is None
            assert [label for label, _ in qv.input.options] == [o.text for o in q.options]
        elif q.type == "many_choice":
            assert all(isinstance(box, W.Checkbox) and not box.value for box in qv.input)
        else:
            assert isinstance(qv.input, W.Text) and qv.input.value == ""
        assert hidden(qv.show_button) and qv.feedback.value == ""
    assert "0 of" in view.summary.value


def test_radio_check_feedback_show_answer_and_score():
    view = view_of("01")
    qv = find(view, "decode-limit")
    wrong = next(i for i, o in enumerate(qv.question.options) if not o.correct)
    right = qv.question.correct_indices[0]

    qv.check_button.click()  # nothing chosen yet
    assert "Choose one of the options" in qv.feedback.value
    assert hidden(qv.show_button) and "0 of 9 correct" in view.summary.value

    qv.input.value = wrong
    qv.check_button.click()
    assert "Not quite" in qv.feedback.value and "cl-incorrect" in qv.feedback.value
    assert qv.question.options[wrong].feedback.split(":")[0] in qv.feedback.value  # why it is wrong
    assert not hidden(qv.show_button)  # Show answer appears after an attempt
    assert "0 of 9 correct" in view.summary.value and "8 not tried" in view.summary.value

    qv.show_button.click()
    assert "Answer:" in qv.answer.value and "Memory bandwidth" in qv.answer.value
    assert "answer shown for 1" in view.summary.value

    qv.input.value = right
    qv.check_button.click()
    assert "Correct" in qv.feedback.value and "cl-correct" in qv.feedback.value
    assert "1 of 9 correct" in view.summary.value


def test_checkboxes_need_the_whole_right_set():
    view = view_of("01")
    qv = find(view, "bound-ignores")
    right = qv.question.correct_indices
    qv.input[right[0]].value = True
    qv.check_button.click()
    assert "not complete" in qv.feedback.value
    for i in right:
        qv.input[i].value = True
    qv.check_button.click()
    assert "Correct" in qv.feedback.value


def test_numeric_text_box_friendly_messages_then_grading():
    view = view_of("01")
    qv = find(view, "tps-13b")
    for text, words in [("", "Type a number"), ("1e", "exponent"), ("1,15", "commas"),
                        ("abc", "not a number"), ("115 apples", "just the number")]:
        qv.input.value = text
        qv.check_button.click()
        assert words in qv.feedback.value and "cl-info" in qv.feedback.value, text
        assert "Traceback" not in qv.feedback.value
        assert hidden(qv.show_button)  # malformed input is not an attempt
    assert "0 of 9 correct (9 not tried yet)" in view.summary.value

    qv.input.value = "40"
    qv.check_button.click()
    assert "too low" in qv.feedback.value and not hidden(qv.show_button)
    qv.input.value = "1.15e2"
    qv.check_button.click()
    assert "Correct" in qv.feedback.value and "115 tokens/s" in qv.feedback.value
    assert "1 of 9 correct" in view.summary.value


def test_units_are_shown_beside_the_text_box():
    qv = find(view_of("02"), "kv-bytes-per-token")
    row = qv.box.children[2]
    assert "MiB" in row.children[1].value


def test_measured_question_without_context_asks_for_the_measurement():
    view = view_of("03")
    qv = find(view, "ridge-yours")
    assert "Run the measurement cell above first" in qv.note.value
    assert "[your measured peak_flops]" in qv.prompt.value
    qv.input.value = "7.7"
    qv.check_button.click()
    assert "run the measurement cell above first" in qv.feedback.value
    assert hidden(qv.show_button)


def test_measured_question_with_context_is_graded_against_it():
    view = view_of("03", CONTEXT)
    qv = find(view, "ridge-yours")
    assert "Run the measurement" not in qv.note.value
    assert "95 GFLOP/s" in qv.prompt.value and "12.4 GB/s" in qv.prompt.value
    qv.input.value = str(95e9 / 12.4e9)
    qv.check_button.click()
    assert "Correct" in qv.feedback.value
    qv.show_button.click()
    assert "7.66" in qv.answer.value


@pytest.mark.parametrize("bad", [{"bandwidth": 0, "peak_flops": 95e9}, {"bandwidth": "fast", "peak_flops": [1]}])
def test_broken_measurements_never_crash_the_widget(bad):
    view = view_of("03", bad)
    qv = find(view, "ridge-yours")
    assert "not available" in qv.prompt.value or "0 GB/s" in qv.prompt.value
    qv.input.value = "7"
    qv.check_button.click()
    assert "measurement cell above again" in qv.feedback.value and hidden(qv.show_button)


def test_reset_clears_everything():
    view = view_of("04")
    qv = view.questions[0]
    qv.input.value = qv.question.correct_indices[0]
    qv.check_button.click()
    qv.show_button.click()
    view.reset_button.click()
    assert qv.input.value is None and qv.feedback.value == "" and qv.answer.value == ""
    assert hidden(qv.show_button)
    assert view.quiz.score() == quiz.Score(0, 0, len(view.quiz), 0)
    assert "0 of" in view.summary.value


def test_plain_text_fallback_is_in_the_display_bundle():
    view = view_of("02")
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    text = bundle["text/plain"]
    for n, q in enumerate(view.quiz, 1):
        assert f"Q{n}. " in text
    assert "Prefill vs decode" in text and len(text) > 500  # not cut at 110 characters
    assert repr(view) == text


def test_show_quiz_displays_one_widget(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    assert show_quiz("1", CONTEXT) is None
    assert len(shown) == 1 and isinstance(shown[0], QuizView)
    assert shown[0].quiz.notebook == "01" and shown[0].context is CONTEXT


def test_show_quiz_without_ipywidgets_prints_text(monkeypatch, capsys):
    monkeypatch.setattr(quiz_widget, "W", None)
    show_quiz("00")
    out = capsys.readouterr().out
    assert "Quiz 00: Start here" in out and "Q1. " in out


def test_bad_notebook_id_is_a_value_error():
    with pytest.raises(ValueError, match="valid ids"):
        quiz_view("07")


def test_markdown_subset():
    html = quiz_widget.markdown_to_html("**Answer:**\n\n- A) x < y\n- B) `z`\n\nText & more")
    assert html == ("<p><b>Answer:</b></p><ul><li>A) x &lt; y</li><li>B) <code>z</code></li></ul>"
                    "<p>Text &amp; more</p>")
