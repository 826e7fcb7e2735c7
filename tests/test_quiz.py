"""Tests of course_lib.quiz: the banks, their schema, the grader and the answer key."""

import copy
import json
import math
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import hardware, perf, quiz
from course_lib.quiz import AnswerError, grade, parse_number

BANKS = {n: quiz.load_bank(n) for n in quiz.notebook_ids()}
ALL_QUESTIONS = [(n, q) for n, bank in BANKS.items() for q in bank]
NUMERIC = [(n, q) for n, q in ALL_QUESTIONS if q.is_numeric]
CHOICE = [(n, q) for n, q in ALL_QUESTIONS if not q.is_numeric]


def ids(pairs):
    return [f"{n}:{q.id}" for n, q in pairs]


# A plausible learner context: every key a measured question may ask for (SI units).
CONTEXT = {
    "bandwidth": 12.4e9,          # bytes/s, a 2-core CPU
    "peak_flops": 95e9,           # FLOP/s
    "model_params": 25.2e6,       # parameters streamed per decode step
    "precision": "fp32",
    "ttft": 0.0421,               # seconds
    "prompt_tokens": 256,
    "acceptance_rate": 0.71,
    "draft_length": 4,
}

# Hand-checked values (in each question's units) for every numeric question with fixed inputs:
# the brief's worked numbers, recomputed on paper. A new numeric question must be added here.
HAND_CHECKED = {
    ("00", "stream-1gb-laptop"): 1e9 / 100e9 * 1e3,                # 10 ms
    ("01", "tps-13b"): 3e12 / (13e9 * 2),                          # ≈ 115 tokens/s
    ("01", "ms-7b-a100"): 7e9 * 2 / 2e12 * 1e3,                    # 7 ms
    ("01", "tps-70b-int4"): 2e12 / (70e9 * 0.5),                   # ≈ 57 tokens/s
    ("02", "linear-intensity-prefill"): 2 * 512 * 4096**2 / (2 * 4096**2 + 512 * 8192 * 2),  # 409.6
    ("02", "decode-intensity"): 2 * 4096**2 / (2 * 4096**2 + 8192 * 2),  # ≈ 1
    ("02", "kv-bytes-per-token"): 0.5,                             # 524288 B = 0.5 MiB
    ("03", "ridge-a100"): 156.0,                                   # 312e12 / 2e12
    ("03", "ridge-h100"): 989e12 / 3.35e12,                        # ≈ 295
    ("03", "critical-batch-a100"): 156.0,
    ("04", "spec-expected"): 3.3616,                               # (1 - 0.8**5) / 0.2
    ("04", "spec-speedup"): 3.3616 / 1.4,                          # ≈ 2.4
    ("04", "tp-405b"): 11,                                         # ceil(810 / 80)
}


# ============================================================================ the banks
def test_every_notebook_has_a_bank():
    assert quiz.notebook_ids() == ["00", "01", "02", "03", "04"]
    assert set(quiz.NOTEBOOKS) == set(BANKS)


@pytest.mark.parametrize("number", sorted(BANKS))
def test_bank_size_and_mix(number):
    bank = BANKS[number]
    assert bank.notebook == number
    assert len(bank) >= (3 if number == "00" else 5)
    types = {q.type for q in bank}
    assert "numeric" in types and types & {"multiple_choice", "many_choice"}, types
    assert any(q.measured for q in bank), "each measured notebook has a 'your machine' question"


@pytest.mark.parametrize("number", sorted(BANKS))
def test_bank_file_is_tidy_json(number):
    """Each bank is valid JSON and question ids are unique (parse_bank enforces it too)."""
    text = (resources.files("course_lib") / f"data/quizzes/{number}.json").read_text("utf-8")
    data = json.loads(text)
    assert len({q["id"] for q in data["questions"]}) == len(data["questions"])


@pytest.mark.parametrize("number,q", CHOICE, ids=ids(CHOICE))
def test_choice_questions_have_a_right_answer_and_feedback_everywhere(number, q):
    assert q.correct_indices, "at least one correct option"
    if q.type == "multiple_choice":
        assert len(q.correct_indices) == 1
    else:
        assert "Tick" in q.question, "say in the question that several options may be right"
    assert len(q.options) >= 2
    for option in q.options:
        assert option.text.strip() and len(option.feedback.strip()) > 20, option
    assert q.explanation.strip()


@pytest.mark.parametrize("number,q", NUMERIC, ids=ids(NUMERIC))
def test_numeric_questions_have_feedback_units_and_a_resolvable_answer(number, q):
    assert q.feedback["correct"].strip() and q.feedback["incorrect"].strip()
    assert q.units.strip()
    assert q.tolerance
    value = q.expected(CONTEXT if q.measured else None)
    assert math.isfinite(value) and value > 0
    low, high = q.accepted_range(CONTEXT)
    assert low <= value <= high


def _direct(spec, context):
    """Resolve a bank value spec with our own code: perf called directly, not through quiz."""
    if isinstance(spec, str) and spec.startswith("$"):
        return context[spec[1:]]
    if isinstance(spec, dict) and "hardware" in spec:
        hw = hardware.get(spec["hardware"])
        return getattr(hw, spec["attr"]) if "attr" in spec else hw.peak_flops(spec["peak_flops"])
    if isinstance(spec, dict):
        module, name = spec["fn"].split(".")
        args = {k: _direct(v, context) for k, v in spec["args"].items()}
        if module == "math":
            return {"div": lambda a, b: a / b, "mul": lambda a, b: a * b}[name](**args)
        assert module == "perf"
        return getattr(perf, name)(**args)
    return spec


@pytest.mark.parametrize("number,q", NUMERIC, ids=ids(NUMERIC))
def test_numeric_answer_equals_course_lib(number, q):
    context = CONTEXT if q.measured else None
    direct = _direct(q.answer, CONTEXT) / quiz.UNITS.get(q.units, 1.0)
    assert q.expected(context) == pytest.approx(direct, rel=1e-12)
    if not q.measured:
        assert (number, q.id) in HAND_CHECKED, "hand-check every fixed numeric answer"
        assert q.expected() == pytest.approx(HAND_CHECKED[number, q.id], rel=2e-3)


def test_worked_numbers_of_the_brief():
    assert BANKS["01"].question("tps-13b").expected() == pytest.approx(115.4, abs=0.1)
    assert BANKS["04"].question("spec-expected").expected() == pytest.approx(3.36, abs=0.005)
    assert BANKS["03"].question("ridge-h100").expected() == pytest.approx(295, abs=0.5)
    assert BANKS["04"].question("tp-405b").expected() == 11
    assert BANKS["02"].question("kv-bytes-per-token").expected() * 2**20 == 524288


def test_hand_checked_table_has_no_stale_entries():
    static = {(n, q.id) for n, q in NUMERIC if not q.measured}
    assert set(HAND_CHECKED) == static


@pytest.mark.parametrize("number,q", NUMERIC, ids=ids(NUMERIC))
def test_common_mistakes_are_not_accepted_as_right(number, q):
    context = CONTEXT if q.measured else None
    for mistake in q.mistakes:
        trap = _direct(mistake.answer, CONTEXT) / quiz.UNITS.get(q.units, 1.0)
        result = grade(q, trap, context)
        assert result.status == "incorrect" and mistake.feedback in result.message


@pytest.mark.parametrize("number,q", [(n, q) for n, q in ALL_QUESTIONS if q.verify],
                         ids=ids([(n, q) for n, q in ALL_QUESTIONS if q.verify]))
def test_verified_premises_of_choice_questions(number, q):
    """A 'verify' entry states what course code must say for the right option to be right."""
    for check in q.verify:
        assert _direct({"fn": check["fn"], "args": check["args"]}, {}) == check["expect"], check


def test_popular_70b_claim_is_marked_wrong():
    q = BANKS["01"].question("fits-70b")
    nearly_filled = next(o for o in q.options if "fills" in o.text)
    assert not nearly_filled.correct and "wrong" in nearly_filled.feedback
    assert not perf.fits(70e9, "fp16", hardware.get("A100-80GB").memory)


@pytest.mark.parametrize("number,q", ALL_QUESTIONS, ids=ids(ALL_QUESTIONS))
def test_question_text_renders(number, q):
    full = q.text(CONTEXT)
    assert "{" not in full and "}" not in full and "[your measured" not in full
    specs = [q.given.get(m.group(1), (q.answer or {}).get("args", {}).get(m.group(1)))
             for m in quiz._PLACEHOLDER.finditer(q.question)]
    shows_a_measurement = any(quiz._refs(spec) for spec in specs)
    assert ("[your measured" in q.text()) == shows_a_measurement


# ============================================================================ schema validation
VALID = {
    "schema_version": 1,
    "notebook": "99",
    "title": "Test bank",
    "questions": [
        {
            "id": "pick",
            "type": "multiple_choice",
            "question": "Which?",
            "explanation": "Because.",
            "options": [
                {"text": "this", "correct": True, "feedback": "Yes, this."},
                {"text": "that", "correct": False, "feedback": "No, not that."},
            ],
        },
        {
            "id": "ticks",
            "type": "many_choice",
            "question": "Which ones?",
            "explanation": "Because.",
            "options": [
                {"text": "a", "correct": True, "feedback": "a is right."},
                {"text": "b", "correct": True, "feedback": "b is right."},
                {"text": "c", "correct": False, "feedback": "c is wrong."},
            ],
        },
        {
            "id": "num",
            "type": "numeric",
            "question": "Tokens/s of {n_params:billion} params at {bandwidth:TB/s}?",
            "explanation": "Bytes over bandwidth.",
            "answer": {"fn": "perf.tokens_per_second",
                       "args": {"n_params": 13e9, "precision": "fp16", "bandwidth": 3e12}},
            "units": "tokens/s",
            "tolerance": {"rel": 0.05},
            "feedback": {"correct": "Well done.", "incorrect": "Bytes / bandwidth.",
                         "too_low": "Too low: check the bytes per parameter."},
            "mistakes": [{"answer": {"fn": "perf.tokens_per_second",
                                     "args": {"n_params": 13e9, "precision": "int8", "bandwidth": 3e12}},
                          "feedback": "FP16 is two bytes."}],
        },
        {
            "id": "mine",
            "type": "numeric",
            "question": "Your machine: {bandwidth:GB/s}. Milliseconds for 1 GB?",
            "explanation": "Bytes over your bandwidth.",
            "answer": {"fn": "perf.decode_time",
                       "args": {"n_params": 1e9, "precision": "int8", "bandwidth": "$bandwidth"}},
            "units": "ms",
            "tolerance": {"abs": 0.5},
            "feedback": {"correct": "Yes.", "incorrect": "Divide."},
        },
        {
            "id": "ridge",
            "type": "numeric",
            "question": "Ridge of the H100?",
            "explanation": "peak / bandwidth.",
            "answer": {"fn": "perf.ridge_point",
                       "args": {"peak_flops": {"hardware": "H100", "peak_flops": "bf16"},
                                "bandwidth": {"hardware": "H100", "attr": "bandwidth"}}},
            "units": "FLOP/byte",
            "tolerance": {"rel": 0.05},
            "feedback": {"correct": "Yes.", "incorrect": "Divide."},
        },
    ],
}


def valid_bank():
    return quiz.parse_bank(copy.deepcopy(VALID), source="test.json")


def mutated(path, value):
    data = copy.deepcopy(VALID)
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()

# (path to change, new value, words the error must contain)
MALFORMED = [
    (("schema_version",), 2, ["test.json", "schema_version"]),
    (("title",), "", ["test.json", "title"]),
    (("questions",), [], ["questions"]),
    (("extra",), 1, ["unknown field 'extra'"]),
    (("questions", 0, "type"), "essay", ["'pick'", "type"]),
    (("questions", 0, "id"), "Bad Id", ["'id'"]),
    (("questions", 1, "id"), "pick", ["'pick'", "used twice"]),
    (("questions", 0, "question"), "  ", ["'pick'", "question"]),
    (("questions", 0, "explanation"), DELETE, ["'pick'", "explanation"]),
    (("questions", 0, "options", 1, "feedback"), "", ["'pick'", "options[1]", "feedback"]),
    (("questions", 0, "options", 1, "feedback"), DELETE, ["'pick'", "options[1]", "feedback"]),
    (("questions", 0, "options", 0, "correct"), "yes", ["'pick'", "options[0].correct"]),
    (("questions", 0, "options", 1, "correct"), True, ["'pick'", "exactly one correct"]),
    (("questions", 0, "options", 0, "correct"), False, ["'pick'", "exactly one correct"]),
    (("questions", 0, "options", 0, "colour"), "red", ["'pick'", "unknown field 'colour'"]),
    (("questions", 0, "options"), [{"text": "x", "correct": True, "feedback": "y"}], ["'pick'", "options"]),
    (("questions", 1, "options", 0, "correct"), False, None),  # still valid: b is right
    (("questions", 2, "answer"), 115.4, ["'num'", "answer", "computed"]),
    (("questions", 2, "answer", "fn"), "os.system", ["'num'", "answer", "os.system"]),
    (("questions", 2, "answer", "fn"), "perf.no_such_thing", ["'num'", "answer"]),
    (("questions", 2, "answer", "args", "n_parms"), 1, ["'num'", "answer", "args"]),
    (("questions", 2, "answer", "args", "precision"), "fp12", ["'num'", "answer", "fp12"]),
    (("questions", 2, "answer", "args", "bandwidth"), -1.0, ["'num'", "answer", "bandwidth"]),
    (("questions", 2, "answer", "args", "bandwidth"), "$", ["'num'", "answer"]),
    (("questions", 2, "tolerance"), DELETE, ["'num'", "tolerance"]),
    (("questions", 2, "tolerance"), {"rel": 5}, ["'num'", "tolerance.rel"]),
    (("questions", 2, "tolerance"), {"rel": -0.1}, ["'num'", "tolerance.rel"]),
    (("questions", 2, "tolerance"), {"pct": 5}, ["'num'", "tolerance"]),
    (("questions", 2, "units"), DELETE, ["'num'", "units"]),
    (("questions", 2, "feedback"), {"correct": "ok"}, ["'num'", "incorrect"]),
    (("questions", 2, "feedback", "too_high"), "", ["'num'", "too_high"]),
    (("questions", 2, "mistakes", 0, "feedback"), "", ["'num'", "mistakes[0]", "feedback"]),
    (("questions", 2, "mistakes", 0, "answer"), 231, ["'num'", "mistakes[0].answer"]),
    (("questions", 2, "options"), [], ["'num'", "unknown field 'options'"]),
    (("questions", 2, "question"), "What is {nope}?", ["'num'", "question", "{nope}"]),
    (("questions", 4, "answer", "args", "bandwidth"), {"hardware": "H100", "attr": "colour"}, ["'ridge'", "attr"]),
    (("questions", 4, "answer", "args", "bandwidth"), {"hardware": "Z80", "attr": "bandwidth"}, ["'ridge'", "Z80"]),
    (("questions", 4, "answer", "args", "bandwidth"), {"hardware": "H100"}, ["'ridge'", "attr"]),
    (("questions", 0, "given"), {"x": [1, 2]}, ["'pick'", "given.x"]),
    (("questions", 0, "verify"), [{"fn": "perf.fits", "args": {}}], ["'pick'", "verify[0]"]),
]


@pytest.mark.parametrize("path,value,words", MALFORMED, ids=[".".join(map(str, m[0])) for m in MALFORMED])
def test_malformed_bank_raises_value_error_naming_the_field(path, value, words):
    data = mutated(path, value)
    if words is None:
        quiz.parse_bank(data, source="test.json")
        return
    with pytest.raises(ValueError) as err:
        quiz.parse_bank(data, source="test.json")
    message = str(err.value)
    assert "test.json" in message
    for word in words:
        assert word in message, (word, message)


def test_top_level_must_be_an_object():
    with pytest.raises(ValueError, match="top level"):
        quiz.parse_bank([1, 2], source="x.json")


# ============================================================================ grading
def test_single_choice_right_wrong_and_empty():
    q = valid_bank().question("pick")
    right = grade(q, 0)
    assert right.correct and right.status == "correct" and "Yes, this." in right.message
    wrong = grade(q, 1)
    assert not wrong.correct and wrong.status == "incorrect" and "No, not that." in wrong.message
    assert grade(q, "this").correct  # by option text too
    for empty in (None, "", ()):
        result = grade(q, empty)
        assert result.status == "invalid" and not result.attempted and "Choose" in result.message
    for bad in (7, -1, True, "neither", 1.5, object()):
        assert grade(q, bad).status == "invalid"


def test_many_choice_needs_exactly_the_right_set():
    q = valid_bank().question("ticks")
    assert grade(q, [0, 1]).correct
    assert grade(q, ("b", "a")).correct
    assert grade(q, [1, 0, 0]).correct  # duplicates are harmless
    partial = grade(q, [0])
    assert partial.status == "incorrect" and "not complete" in partial.headline
    assert "a is right." in partial.message  # feedback for each ticked option
    extra = grade(q, [0, 1, 2])
    assert extra.status == "incorrect" and "c is wrong." in extra.message
    mixed = grade(q, [0, 2])
    assert "unticked" in mixed.headline
    for empty in (None, [], ""):
        assert grade(q, empty).status == "invalid"
    assert grade(q, [0, 9]).status == "invalid"
    assert grade(q, 0).status == "incorrect"  # a lone index is one tick


def test_numeric_within_and_outside_tolerance():
    q = valid_bank().question("num")
    expected = q.expected()
    assert expected == pytest.approx(115.38, abs=0.01)
    for answer in ("115", "115.4", " 110 ", "1.2e2", "115 tokens/s", "115 tok/s", "~115", 121.0):
        result = grade(q, answer)
        assert result.correct, (answer, result.message)
        assert "Well done." in result.message
    low = grade(q, "100")
    assert low.status == "incorrect" and "too low" in low.headline and "bytes per parameter" in low.message
    high = grade(q, "130")
    assert high.status == "incorrect" and "too high" in high.headline and "Bytes / bandwidth." in high.message
    assert grade(q, "231").message.count("FP16 is two bytes.") == 1  # a known slip
    thousand = grade(q, "0.1154")
    assert "10^3" in thousand.headline and "tokens/s" in thousand.message


def test_numeric_absolute_tolerance_and_units_conversion():
    q = valid_bank().question("mine")
    context = {"bandwidth": 20e9}
    assert q.expected(context) == pytest.approx(50.0)  # 1e9 B / 20e9 B/s = 50 ms
    assert grade(q, "50.4", context).correct
    assert not grade(q, "51", context).correct
    assert not grade(q, "0.05", context).correct  # seconds, not ms: hint about units
    assert "ms" in grade(q, "0.05", context).message


def test_hardware_values_come_from_the_catalogue():
    q = valid_bank().question("ridge")
    h100 = hardware.get("H100-SXM")
    assert q.expected() == pytest.approx(h100.peak_flops("bf16") / h100.bandwidth)


def test_measured_question_without_context_is_friendly():
    q = valid_bank().question("mine")
    assert q.measured and q.context_keys == ("bandwidth",)
    for context in (None, {}, {"bandwidth": None}, {"other": 1}):
        result = grade(q, "50", context)
        assert result.status == "needs_context" and not result.attempted
        assert "measurement" in result.message and "bandwidth" in result.message
    bad = grade(q, "50", {"bandwidth": 0})  # a broken measurement, not a crash
    assert bad.status == "needs_context" and "bandwidth" in bad.message
    bad = grade(q, "50", {"bandwidth": "fast"})
    assert bad.status == "needs_context"


def test_context_must_be_a_mapping():
    q = valid_bank().question("mine")
    with pytest.raises(TypeError, match="dict of measurements"):
        grade(q, "50", [("bandwidth", 20e9)])


@pytest.mark.parametrize("text,value", [
    ("143", 143.0), ("  143  ", 143.0), ("-2.5", -2.5), ("+3", 3.0), (".5", 0.5), ("5.", 5.0),
    ("1.4e2", 140.0), ("1E-3", 1e-3), ("2e+3", 2000.0), ("1_000", 1000.0), ("≈ 3.36", 3.36),
    ("~7", 7.0), ("\u22125", -5.0), (0, 0.0), (2.5, 2.5), ("7 ms", 7.0),
])
def test_parse_number_accepts(text, value):
    assert parse_number(text, units="ms") == value


@pytest.mark.parametrize("text,hint", [
    ("", "Type a number"), ("   ", "Type a number"), (None, "Type a number"),
    ("1e", "exponent"), ("2.5E-", "exponent"), ("abc", "not a number"), ("1,5", "commas"),
    ("1,000", "commas"), ("1 000", "spaces"), ("143 tok/s", "just the number"),
    ("1.4 x 10^2", "1.4e2"), ("12 apples", "just the number"), ("inf", "not a number"), ("nan", "not a number"), ("1e999", "too large"),
    ("0x10", "just the number"), ("1..2", "not a number"), (True, "number"), ([1], "number"),
    (float("inf"), "finite"), ("--1", "not a number"), ("1_", "not a number"),
])
def test_parse_number_refuses_with_a_friendly_message(text, hint):
    with pytest.raises(AnswerError) as err:
        parse_number(text, units="ms")
    message = str(err.value)
    assert hint in message and "Traceback" not in message and len(message) < 200


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None, database=None)
def test_any_string_never_raises(text):
    q = valid_bank().question("num")
    result = grade(q, text)
    assert result.status in ("correct", "incorrect", "invalid")
    assert result.message.strip()
    try:
        value = parse_number(text)
    except AnswerError as err:
        assert str(err).strip()
    else:
        assert math.isfinite(value)


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                 st.lists(st.one_of(st.integers(-3, 5), st.text(max_size=3)), max_size=5)))
@settings(max_examples=200, deadline=None, database=None)
def test_any_answer_to_any_question_type_never_raises(answer):
    bank = valid_bank()
    for q in bank:
        result = grade(q, answer, {"bandwidth": 20e9})
        assert result.status in ("correct", "incorrect", "invalid") and result.message


@pytest.mark.parametrize("x,text", [
    (115.384, "115"), (3.3616, "3.36"), (524288, "524288"), (0.5, "0.5"), (156.0, "156"),
    (1.3e10, "1.3e10"), (2.4e-5, "2.4e-5"), (0, "0"), (-8.666, "-8.67"), (57.142, "57.1"), (11, "11"),
])
def test_format_number(x, text):
    assert quiz.format_number(x) == text


# ============================================================================ quiz state
def test_quiz_records_attempts_score_reveal_and_reset():
    bank = valid_bank()
    assert str(bank.score()) == "Score: 0 of 5 correct (5 not tried yet)."
    bank.check("pick", None)  # not an attempt
    assert bank.score().attempted == 0
    bank.check("pick", 1)
    bank.check("pick", 0)
    bank.check("num", "115")
    bank.check("mine", "50")  # no context: not an attempt
    score = bank.score()
    assert (score.correct, score.attempted, score.total) == (2, 2, 5)
    assert bank.attempts["pick"] == 2
    answer = bank.reveal("ticks")
    assert "a" in answer and "Because." in answer
    assert "answer shown for 1" in str(bank.score())
    bank.reset()
    assert bank.score() == quiz.Score(0, 0, 5, 0)
    with pytest.raises(ValueError, match="known: pick"):
        bank.question("nope")


def test_latest_attempt_counts():
    bank = valid_bank()
    bank.check("pick", 0)
    bank.check("pick", 1)
    assert bank.score().correct == 0


def test_plain_text_shows_every_question_and_option():
    for bank in BANKS.values():
        text = bank.text()
        for n, q in enumerate(bank, 1):
            assert f"Q{n}. " in text
            for option in q.options:
                assert option.text in text


# ============================================================================ answer key and ids
@pytest.mark.parametrize("number", sorted(BANKS))
def test_answer_key_has_every_question_and_answer(number):
    key = quiz.answer_key(number)
    bank = BANKS[number]
    assert key.startswith(f"# Answer key, quiz {number}")
    for q in bank:
        assert f"`{q.id}`" in key
        assert q.explanation in key
    assert key.count("**Answer:") == len(bank)
    for q in bank:
        if q.is_numeric and not q.measured:
            assert quiz.format_number(q.expected()) in key
    with_context = quiz.answer_key(number, CONTEXT)
    assert "[your measured" not in with_context and "depends on the learner" not in with_context


def test_answer_key_of_measured_question_shows_the_formula():
    key = quiz.answer_key("03")
    assert "perf.ridge_point(peak_flops=your measured `peak_flops`, bandwidth=your measured `bandwidth`)" in key


@pytest.mark.parametrize("given_id", [1, "1", "01", " 01 ", "01_the_bottleneck", "01_the_bottleneck.ipynb",
                                      "notebooks/01_the_bottleneck.ipynb", "1.json"])
def test_notebook_id_normalised(given_id):
    assert quiz.normalize_notebook_id(given_id) == "01"


@pytest.mark.parametrize("bad", ["05", "1_roofline", "abc", "", None, True, 1.0, "001x"])
def test_unknown_notebook_id_lists_valid_ids(bad):
    with pytest.raises(ValueError) as err:
        quiz.answer_key(bad)
    assert "valid ids" in str(err.value) and "01 (01_the_bottleneck)" in str(err.value)


def test_load_bank_returns_a_fresh_quiz():
    a, b = quiz.load_bank("02"), quiz.load_bank("02")
    a.check(a.questions[0].id, 0)
    assert b.score().attempted == 0
