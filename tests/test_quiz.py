"""course_lib.quiz: the banks and their schema, grading, number parsing and the answer keys."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import checks, perf, quiz, specs
from course_lib.quiz import AnswerError, grade, parse_number

ROOT = Path(__file__).resolve().parents[1]
BANKS = {n: quiz.load_bank(n) for n in quiz.notebook_ids()}
NUMERIC = [(n, q) for n, bank in BANKS.items() for q in bank.questions if q.type == "numeric"]

# A plausible learner's measurements (SI units): every key a measured question may ask for.
CONTEXT = {"bandwidth": 12.4e9, "peak_flops": 95e9, "model_params": 25.2e6, "precision": "fp32",
           "ttft": 0.0421, "prompt_tokens": 256, "acceptance_rate": 0.71, "draft_length": 4,
           "sweep_context": 16, "step_time_1": 5.2e-3, "step_time_16": 7.9e-3}

# Every numeric answer worked out on paper, in the question's units (measured ones with CONTEXT).
HAND_CHECKED = {
    ("00", "stream-1gb-laptop"): 1e9 / 100e9 * 1e3,                          # 10 ms
    ("00", "stream-1gb-yours"): 1e9 / 12.4e9 * 1e3,                          # 80.6 ms
    ("01", "tps-13b"): 3e12 / (13e9 * 2),                                    # 115 tokens/s
    ("01", "ms-7b-a100"): 7e9 * 2 / 2e12 * 1e3,                              # 7 ms
    ("01", "tps-70b-int4"): 2e12 / (70e9 * 0.5),                             # 57 tokens/s
    ("01", "toy-ms-yours"): 25.2e6 * 4 / 12.4e9 * 1e3,                       # 8.13 ms
    ("02", "linear-intensity-prefill"): 2 * 512 * 4096**2 / (2 * 4096**2 + 512 * 8192 * 2),  # 409.6
    ("02", "decode-intensity"): 2 * 4096**2 / (2 * 4096**2 + 8192 * 2),      # ≈ 1
    ("02", "kv-bytes-per-token"): 0.5,                                       # 524288 B = 0.5 MiB
    ("02", "prefill-bound-yours"): 2 * 25.2e6 * 256 / 95e9 * 1e3,            # compute-bound: 136 ms
    ("02", "prefill-longer-yours"): 4 * 0.0421 * 1e3,                       # compute-bound: 4x the TTFT, 168 ms
    ("03", "ridge-a100"): 312e12 / 2e12,                                     # 156
    ("03", "ridge-h100"): 989e12 / 3.35e12,                                  # 295
    ("03", "critical-batch-a100"): 156.0,
    ("03", "ridge-yours"): 95e9 / 12.4e9,                                    # 7.66
    ("03", "batch-gain-yours"): 16 * 5.2e-3 / 7.9e-3,                        # 10.5x the tokens/s of batch 1
    ("04", "spec-expected"): (1 - 0.8**5) / 0.2,                             # 3.36
    ("04", "spec-speedup"): (1 - 0.8**5) / 0.2 / 1.4,                        # 2.4
    ("04", "tp-405b"): 10,                                                   # ceil(810 / 85.5) (81,559 MiB)
    ("04", "spec-yours"): (1 - 0.71**9) / 0.29,                              # 3.29: γ doubled to 8
}


# Numbers that banks show in their texts (filled in from `given`), worked out on paper:
# (bank, question) -> (hand-worked value, the unit the text shows it in).
HAND_CHECKED_TEXT = {
    ("01", "decode-limit"): ((14e9 / 312e12) / (14e9 / 2e12) * 100, "%"),          # 0.641 %: arithmetic / weights
    ("01", "h200-decode"): (4.8e12 / 3.35e12, ""),                                 # 1.43x: the bandwidth ratio
    ("01", "moe-active"): (13e9 * 2 / 4.8e12 * 1e3, "ms"),                         # 5.42 ms: active weights only
    ("02", "gqa-heads"): ((14e9 + 2 * 32 * 32 * 128 * 2 * 8192) / (14e9 + 2 * 32 * 8 * 128 * 2 * 8192), ""),  # 1.21
    ("02", "chunked-prefill"): (2 * 7e9 * 30000 / 989e12 * 1e3, "ms"),             # 425 ms of prefill
    ("03", "kv-capacity"): ((85.899e9 - 14e9) / (2 * 32 * 32 * 128 * 2 * 4096), ""),  # 33.5 fit in 81,920 MiB
    ("03", "w4a16-w8a8"): (round(989e12 / 3.35e12 * 0.5 / 2), ""),                 # 74 (73.8): W4A16's critical batch
    ("00", "stream-1gb-laptop"): (1e9 / 100e9 * 1e3, "ms"),                        # 10 ms
    ("01", "tps-13b"): (13e9 * 2 / 3e12 * 1e3, "ms"),                              # 8.67 ms per token
    ("01", "fits-70b"): (2e12 / (70e9 * 2), ""),                                    # 14.3 tokens/s, if it fitted
    ("01", "tps-70b-int4"): (70e9 * 0.5 / 2e12 * 1e3, "ms"),                        # 17.5 ms per token
    ("02", "linear-intensity-prefill"): (2 * 512 * 4096**2 / (2 * 4096**2 + 512 * 8192 * 2), ""),  # 410
    ("03", "ridge-a100"): (312e12 / 1.555e12, ""),                                   # 201: the 40 GB model
    ("03", "recorded-32"): (32 * 4.6566 / 5.8170, ""),                              # 25.6x: the recorded H200
    ("03", "batch-cost"): (2 / (3.35e12 / 14e9 * 3600 / 1e6), ""),                 # 2.32 dollars per million tokens
}


# ============================================================================ the banks
@pytest.mark.parametrize("number", sorted(BANKS))
def test_every_bank_mixes_types_and_asks_about_the_learners_machine(number):
    bank = BANKS[number]
    assert bank.notebook == number and len(bank.questions) >= (3 if number == "00" else 5)
    assert {q.type for q in bank.questions} >= {"numeric", "multiple_choice"}
    assert any(q.context_keys for q in bank.questions), "each notebook asks about the learner's machine"


@pytest.mark.parametrize("number", ["01", "02", "03"])
def test_at_least_half_of_the_questions_ask_to_interpret_or_transfer(number):
    skills = [q.skill for q in BANKS[number].questions]
    assert 2 * sum(skill in ("interpret", "transfer") for skill in skills) >= len(skills), skills


@pytest.mark.parametrize("number,qid", sorted(HAND_CHECKED_TEXT))
def test_numbers_in_the_texts_match_the_hand_worked_values(number, qid):
    q = next(q for q in BANKS[number].questions if q.id == qid)
    value, units = HAND_CHECKED_TEXT[number, qid]
    texts = [q.text(), q.explanation, *q.feedback.values(), *(t for o in q.options for t in (o.text, o.feedback))]
    assert any(perf.format_number(value, units) in text for text in texts), perf.format_number(value, units)
    assert not any("{" in text for text in texts)


def test_a_bank_reads_the_recorded_run_and_goes_without_it_when_there_is_none(monkeypatch):
    ms = {r["batch"]: r["ms_per_step"] for r in specs.load_reference()["batch_sweep"] if r["context_len"] == 128}
    recorded = quiz.FUNCTIONS["recorded.batching"]  # the record's shortest context is 128 tokens: 4.657 and 5.817 ms
    assert recorded(32, "throughput_gain") == pytest.approx(32 * 4.6566 / 5.8170, rel=1e-4) == 32 * ms[1] / ms[32]
    assert recorded(32, "latency_ratio") == pytest.approx(5.8170 / 4.6566, rel=1e-4) and recorded(32, "context_len") == 128
    monkeypatch.setattr(specs, "load_reference", lambda card=None: None)
    with pytest.raises(quiz.MissingContext):
        recorded(32, "latency_ratio")
    ids = [q.id for q in quiz.load_bank("03").questions]
    assert "recorded-32" not in ids and len(ids) == len(BANKS["03"].questions) - 1
    assert len(checks.QuizView("03", CONTEXT).questions) == len(ids)


def test_every_numeric_answer_is_hand_checked():
    assert set(HAND_CHECKED) == {(n, q.id) for n, q in NUMERIC}, "add the new question's value to HAND_CHECKED"


@pytest.mark.parametrize("number,qid", sorted(HAND_CHECKED))
def test_computed_answer_matches_the_hand_worked_value(number, qid):
    q = next(q for q in BANKS[number].questions if q.id == qid)
    assert q.expected(CONTEXT) == pytest.approx(HAND_CHECKED[number, qid], rel=2e-3)
    assert grade(q, f"{HAND_CHECKED[number, qid]:.6g}", CONTEXT).correct


def test_common_mistakes_get_their_own_feedback_not_a_tick():
    checked = 0
    for _, q in NUMERIC:
        for mistake in q.mistakes:
            result = grade(q, q.expected(CONTEXT, mistake["answer"]), CONTEXT)
            assert result.status == "incorrect" and mistake["feedback"] in result.message, q.id
            checked += 1
    assert checked >= 4


def test_question_texts_fill_every_placeholder():
    for bank in BANKS.values():
        for q in bank.questions:
            assert "{" not in q.text(CONTEXT) and "[your measured" not in q.text(CONTEXT), q.id
    assert "[your measured peak_flops]" in next(q for q in BANKS["03"].questions if q.id == "ridge-yours").text()
    assert "13 billion" in next(q for q in BANKS["01"].questions if q.id == "tps-13b").text()


# ============================================================================ broken banks
VALID = {
    "schema_version": 1, "notebook": "99", "title": "Test bank",
    "questions": [
        {"id": "pick", "type": "multiple_choice", "skill": "interpret", "question": "Which?", "explanation": "Because.",
         "given": {"bw": {"hardware": "A100-80GB", "attr": "bandwidth"}},
         "options": [{"text": "this, at {bw:TB/s}", "correct": True, "feedback": "Yes, this."},
                     {"text": "that", "correct": False, "feedback": "No, not that."}]},
        {"id": "ticks", "type": "many_choice", "skill": "transfer", "question": "Which ones?", "explanation": "Because.",
         "options": [{"text": "a", "correct": True, "feedback": "a is right."},
                     {"text": "b", "correct": True, "feedback": "b is right."},
                     {"text": "c", "correct": False, "feedback": "c is wrong."}],
         "verify": [{"fn": "perf.fits", "args": {"n_params": 7e9, "precision": "fp16", "memory": 80e9},
                     "expect": True}]},
        {"id": "num", "type": "numeric", "skill": "compute",
         "question": "Tokens/s of {n_params:billion} params at {bandwidth:TB/s}?",
         "explanation": "Bytes over bandwidth.", "units": "tokens/s", "tolerance": {"rel": 0.05},
         "answer": {"fn": "perf.tokens_per_second", "args": {"n_params": 13e9, "precision": "fp16", "bandwidth": 3e12}},
         "feedback": {"correct": "Well done: {n_params:billion} × 2 bytes.", "incorrect": "Bytes / bandwidth.",
                      "too_high": "Too high: 2 bytes each."},
         "mistakes": [{"answer": {"fn": "perf.tokens_per_second",
                                  "args": {"n_params": 13e9, "precision": "int8", "bandwidth": 3e12}},
                       "feedback": "FP16 is two bytes."}]},
        {"id": "mine", "type": "numeric", "skill": "compute",
         "question": "Your machine: {bandwidth:GB/s}. Milliseconds for 1 GB?",
         "explanation": "Bytes over your bandwidth.", "units": "ms", "tolerance": {"abs": 0.5},
         "answer": {"fn": "perf.decode_time",
                    "args": {"n_params": 1e9, "precision": "int8", "bandwidth": "$bandwidth"}},
         "feedback": {"correct": "Yes.", "incorrect": "Divide."}},
    ],
}
DELETE = object()


def bank(data=None):
    return quiz.parse_bank(copy.deepcopy(data or VALID), source="test.json")


def question(qid):
    return next(q for q in bank().questions if q.id == qid)


# (path to change, new value, words the error must contain besides "test.json")
BROKEN = [
    (("title",), DELETE, ["title", "required"]),
    (("questions", 0, "explanation"), DELETE, ["questions[0]", "explanation", "required"]),
    (("questions", 0, "options", 0, "correct"), "yes", ["questions[0].options[0].correct", "boolean"]),
    (("questions", 0, "colour"), "red", ["questions[0]", "colour"]),
    (("questions", 0, "type"), "essay", ["questions[0]", "essay"]),
    (("questions", 0, "skill"), DELETE, ["questions[0]", "skill", "required"]),
    (("questions", 0, "skill"), "recall", ["questions[0].skill", "recall"]),
    (("questions", 1, "id"), "pick", ["question 'pick'", "used twice"]),
    (("questions", 0, "options", 1, "correct"), True, ["questions[0].options", "at most 1", "exactly one correct"]),
    (("questions", 1, "options"), [{"text": t, "correct": False, "feedback": "No."} for t in "ab"],
     ["questions[1].options", "at least one correct"]),
    (("questions", 1, "options", 1, "text"), "a", ["question 'ticks'", "same text"]),
    (("questions", 0, "options", 1, "feedback"), "No: {nope}.", ["question 'pick'", "{nope}"]),
    (("questions", 3, "feedback", "correct"), "Yes: {bandwidth}.", ["question 'mine'", "{bandwidth}", "measured"]),
    (("questions", 1, "verify", 0, "expect"), False, ["question 'ticks'", "verify[0]", "perf.fits"]),
    (("questions", 2, "answer"), 115.4, ["questions[2].answer", "object"]),
    (("questions", 2, "answer", "fn"), "perf.no_such_thing", ["question 'num'", "unknown function", "no_such_thing"]),
    (("questions", 2, "mistakes", 0, "answer", "args", "n_parms"), 1, ["question 'num'", "mistakes[0]", "n_parms"]),
    (("questions", 2, "answer", "args", "precision"), "fp12", ["question 'num'", "answer", "fp12"]),
    (("questions", 2, "tolerance"), {"rel": 5}, ["questions[2].tolerance.rel"]),
    (("questions", 2, "options"), [], ["questions[2]", "options"]),
    (("questions", 2, "question"), "What is {nope}?", ["question 'num'", "{nope}"]),
    (("questions", 3, "answer", "args", "bandwidth"), {"hardware": "Z80", "attr": "bandwidth"}, ["'mine'", "Z80"]),
    (("questions", 3, "answer", "args", "bandwidth"), "$latency", ["'mine'", "$latency", "not a measurement"]),
]


@pytest.mark.parametrize("path,value,words", BROKEN, ids=[".".join(map(str, b[0])) for b in BROKEN])
def test_broken_bank_raises_a_value_error_naming_bank_question_and_field(path, value, words):
    data = copy.deepcopy(VALID)
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    with pytest.raises(ValueError) as err:
        bank(data)
    message = str(err.value)
    assert message.startswith("quiz bank test.json") and len(message) < 600, message
    for word in words:
        assert word in message, (word, message)


# ============================================================================ grading
def test_multiple_choice_gives_the_feedback_of_the_chosen_option():
    q = question("pick")
    right, wrong = grade(q, 0), grade(q, 1)
    assert right.correct and right.status == "correct" and "Yes, this." in right.message
    assert wrong.status == "incorrect" and "No, not that." in wrong.message
    assert q.options[0].text == "this, at 2.04 TB/s"  # placeholders of an option: filled when the bank is loaded
    for not_an_answer in (None, "", 7, True, "this", [0]):
        assert grade(q, not_an_answer).status == "invalid" and not grade(q, not_an_answer).attempted


def test_many_choice_needs_exactly_the_right_set():
    q = question("ticks")
    assert grade(q, [1, 0]).correct and grade(q, (0, 1)).correct
    partial, extra, mixed = grade(q, [0]), grade(q, [0, 1, 2]), grade(q, [0, 2])
    assert "not complete" in partial.headline and "a is right." in partial.message
    assert not extra.correct and "c is wrong." in extra.message
    assert "unticked" in mixed.headline
    assert grade(q, []).status == "invalid" and grade(q, [0, 9]).status == "invalid"


def test_numeric_tolerance_direction_mistakes_and_units_hint():
    q = question("num")  # 3e12 / 26e9 = 115.38 tokens/s, 5 %
    for answer in ("115", " 110 ", "1.2e2", "115 tokens/s", "115 tok/s", "~115", 121.0):
        assert grade(q, answer).correct, answer
    high = grade(q, "130")
    assert high.status == "incorrect" and "too high" in high.headline and "Too high: 2 bytes each." in high.message
    low = grade(q, "100")
    assert "too low" in low.headline and "Bytes / bandwidth." in low.message  # no too_low: the general text
    assert "FP16 is two bytes." in grade(q, "231").message
    assert "Well done: 13 billion × 2 bytes." in grade(q, "115").message
    units = grade(q, "0.1154")
    assert "10^3" in units.headline and "tokens/s" in units.message


def test_measured_question_uses_the_context_and_converts_units():
    q = question("mine")  # 1e9 B / 20e9 B/s = 50 ms, ± 0.5
    assert q.context_keys == ("bandwidth",)
    assert grade(q, "50.4", {"bandwidth": 20e9}).correct
    assert not grade(q, "51", {"bandwidth": 20e9}).correct
    for context in (None, {}, {"bandwidth": None}):
        result = grade(q, "50", context)
        assert result.status == "needs_context" and "bandwidth" in result.message and not result.attempted
    assert grade(q, "50", {"bandwidth": 0}).status == "needs_context"  # a broken measurement, not a crash
    with pytest.raises(TypeError, match="dict of measurements"):
        grade(q, "50", [("bandwidth", 20e9)])


@pytest.mark.parametrize("text,value", [("143", 143.0), ("-2.5", -2.5), (".5", 0.5), ("1.4e2", 140.0),
                                        ("1_000", 1000.0), ("≈ 3.36", 3.36), ("\u22125", -5.0), ("7 ms", 7.0)])
def test_parse_number_accepts(text, value):
    assert parse_number(text, units="ms") == value


@pytest.mark.parametrize("text,hint", [
    ("", "Type a number"), ("1e", "exponent"), ("1,5", "without commas"), ("1,000", "without commas"),
    ("1 000", "spaces"), ("12 apples", "just the number"), ("1.4 x 10^2", "1.4e2"), ("abc", "not a number"),
    ("nan", "not a number"), ("1e999", "too large"), (float("inf"), "not a number"),
])
def test_parse_number_refuses_with_a_friendly_message(text, hint):
    with pytest.raises(AnswerError) as err:
        parse_number(text, units="ms")
    assert hint in str(err.value) and len(str(err.value)) < 200


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                 st.lists(st.one_of(st.integers(-3, 5), st.text(max_size=3)), max_size=5)))
@settings(max_examples=300, deadline=None, database=None)
def test_no_answer_to_any_question_raises(answer):
    for q in bank().questions:
        result = grade(q, answer, {"bandwidth": 20e9})
        assert result.status in ("correct", "incorrect", "invalid") and result.message.strip()


# ============================================================================ answer keys and ids
@pytest.mark.parametrize("number", sorted(BANKS))
def test_answer_key_renders_every_question(number):
    key = checks.answer_key(number)
    assert key.startswith(f"# Answer key, quiz {number}: {BANKS[number].title}")
    assert key.count("**Answer:") == len(BANKS[number].questions)
    for q in BANKS[number].questions:
        assert f"`{q.id}`" in key and q.explanation in key and f"skill: {q.skill})" in key
        assert all(f"{q.options[i].text} — **right**" in key for i in q.correct_indices)
    assert "depends on the learner" not in checks.answer_key(number, CONTEXT)


def test_answer_key_numbers_and_measured_formula():
    assert "**Answer: ≈ 115 tokens/s** (accepted: from 110 to 121 tokens/s)" in checks.answer_key("01")
    assert ("perf.ridge_point(peak_flops=your measured `peak_flops`, bandwidth=your measured `bandwidth`)"
            in checks.answer_key("03"))


def test_notebook_ids_and_their_spellings():
    assert quiz.notebook_ids() == ["00", "01", "02", "03", "04"]
    for spelling in (1, "01", " 1 ", "01_the_bottleneck", "notebooks/01_the_bottleneck.ipynb"):
        assert quiz.load_bank(spelling).notebook == "01"
    for bad in ("05", "abc", None, True):
        with pytest.raises(ValueError, match="valid ids: 00, 01"):
            quiz.load_bank(bad)


def test_quiz_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import course_lib.quiz as q; "
            "print(sum(len(q.load_bank(n).questions) for n in q.notebook_ids()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == str(sum(len(b.questions) for b in BANKS.values())), out.stderr
