"""The workshop kit: the switch, the quiz reset, the generated instructor guide, the slides."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import devices, microbench, model, quiz, workshop
from course_lib import profile as prof
from course_lib.quiz_bank import NOTEBOOKS, _with_units
from course_lib.quiz_widget import quiz_view

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "INSTRUCTOR_GUIDE.md"
SLIDES = ROOT / "docs" / "SLIDES.md"
REGENERATE = "python -m course_lib guide -o docs/INSTRUCTOR_GUIDE.md"


@pytest.fixture
def clean_env(monkeypatch):
    """Both switches off; monkeypatch restores whatever enable()/disable() leave behind."""
    for name in workshop.ENV_VARIABLES:
        monkeypatch.setenv(name, "0")
    return monkeypatch


@pytest.fixture(scope="module")
def guide():
    return workshop.instructor_guide()


# ---------------------------------------------------------------------------- the switch
def test_enable_makes_later_measurements_fast_and_disable_undoes_it(clean_env):
    assert not workshop.is_enabled() and not microbench.fast_mode()
    workshop.enable(quiet=True)
    assert workshop.is_enabled() and microbench.fast_mode()  # read at call time, not at import
    assert microbench.fast_mode(False) is False              # an explicit argument still wins
    workshop.disable(quiet=True)
    assert not workshop.is_enabled() and not microbench.fast_mode()


@pytest.mark.parametrize("name", workshop.ENV_VARIABLES)
@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_either_environment_variable_switches_it_on(clean_env, name, value, on):
    clean_env.setenv(name, value)
    assert workshop.is_enabled() is on


def test_disable_overrides_a_launcher_that_exported_course_fast(clean_env):
    clean_env.setenv("COURSE_FAST", "1")  # what binder/start does
    workshop.disable(quiet=True)
    assert not microbench.fast_mode()


def test_enable_prints_what_it_did(clean_env, capsys):
    workshop.enable()
    assert "Workshop mode is on" in capsys.readouterr().out


def test_course_workshop_alone_reaches_the_measurement_code(clean_env):
    clean_env.setenv("COURSE_WORKSHOP", "1")
    assert microbench.fast_mode()


def test_a_default_mode_profile_is_reused_in_workshop_mode(clean_env, tmp_path):
    clean_env.setenv("COURSE_LIB_CACHE_DIR", str(tmp_path))
    calls = []

    def measure(device=None, fast=None, progress=False):
        calls.append(fast)
        return prof.MachineProfile(
            device_type="cpu", device_name=devices.device_name("cpu"), torch_version=torch.__version__,
            date="2026-01-01T00:00:00+00:00", dtypes=["fp32"], copy_bandwidth=12e9, read_bandwidth=14e9,
            matmul_flops={"fp32": 1e11}, launch_overhead=5e-6, launch_overhead_graph=None,
            cache_bytes=32 * 2**20, cpu_threads=torch.get_num_threads(), fast=bool(fast))

    clean_env.setattr(prof, "measure_profile", measure)
    assert prof.get_profile("cpu").fast is False and calls == [False]
    workshop.enable(quiet=True)
    assert prof.get_profile("cpu").fast is False and calls == [False]   # reused, not measured again
    (tmp_path / "profile-cpu.json").unlink()
    assert prof.get_profile("cpu").fast is True and calls == [False, True]
    workshop.disable(quiet=True)
    assert prof.get_profile("cpu").fast is False and calls == [False, True, False]  # fast one replaced


def test_memory_guard_message_is_the_one_the_guide_quotes(monkeypatch, guide):
    monkeypatch.setattr(devices, "free_memory", lambda device: 1.0)
    with pytest.raises(ValueError, match=r"this model needs .* GB .* but only .* GB is free"):
        model.check_memory(model.get_config("tiny"), torch.device("cpu"), "fp32", 1)
    assert '"this model needs … GB … but only … GB is free"' in guide


# ---------------------------------------------------------------------------- quiz reset
def test_reset_quizzes_clears_every_displayed_quiz():
    first, second = quiz_view("01"), quiz_view("03")
    try:
        picked = [next(qv for qv in view.questions if qv.question.type == "multiple_choice")
                  for view in (first, second)]
        for view, qv in zip((first, second), picked):
            qv.input.value = 0
            qv.check()
            qv.show_answer()
            assert view.quiz.score().attempted == 1 and qv.feedback.value
        assert workshop.reset_quizzes() >= 2
        for view, qv in zip((first, second), picked):
            assert view.quiz.score().attempted == 0 and not view.quiz.revealed
            assert qv.input.value is None and qv.feedback.value == "" and qv.answer.value == ""
            assert "0 of" in view.summary.value
    finally:
        first.close()
        second.close()


def test_reset_quizzes_ignores_closed_quizzes():
    view = quiz_view("02")
    view.close()
    assert all(v is not view for v in workshop._live_quiz_views())


# ---------------------------------------------------------------------------- the guide
def test_committed_guide_is_the_generated_one(guide):
    assert GUIDE.exists(), f"generate it: {REGENERATE}"
    assert GUIDE.read_text(encoding="utf-8") == guide, f"docs/INSTRUCTOR_GUIDE.md is stale: {REGENERATE}"


@pytest.mark.parametrize("nb_id", sorted(NOTEBOOKS))
def test_answer_key_renders_for_every_notebook(guide, nb_id):
    assert nb_id in quiz.notebook_ids(), f"notebook {nb_id} has no quiz bank"
    key = quiz.answer_key(nb_id)
    bank = quiz.load_bank(nb_id)
    assert workshop._shift_headings(key, 2).rstrip() in guide
    for number, q in enumerate(bank.questions, 1):
        assert f"#### Q{number} `{q.id}`" in guide
        assert q.explanation in key
        for i in q.correct_indices:
            assert f"{q.options[i].text} — **right**" in key
        if q.is_numeric:
            assert "**Answer:" in key


def test_answer_key_numbers_are_computed_not_copied(guide):
    """A fixed numeric question's value in the guide is what the bank computes now."""
    checked = 0
    for nb_id in quiz.notebook_ids():
        for q in quiz.load_bank(nb_id).questions:
            if q.is_numeric and not q.measured:
                shown = _with_units(q.expected({}), q.units)
                assert f"**Answer: ≈ {shown}**" in guide, (nb_id, q.id)
                checked += 1
    assert checked >= 5


def notebooks_present():
    return [nb_id for nb_id in sorted(NOTEBOOKS) if workshop.notebook_path(nb_id).exists()]


@pytest.mark.parametrize("nb_id", notebooks_present())
def test_objectives_and_exercises_come_from_the_notebook(guide, nb_id):
    outline = workshop.notebook_outline(nb_id)
    assert outline["title"].startswith(nb_id) and outline["title"] in guide
    assert len(outline["objectives"]) >= 2 and outline["minutes"]
    for objective in outline["objectives"]:
        assert f"- {objective}" in guide
    if nb_id != "00":
        assert len(outline["exercises"]) >= 2, f"notebook {nb_id} has no '## Exercises' list"
        for i, exercise in enumerate(outline["exercises"], 1):
            assert f"{i}. {exercise}" in guide
        # the guide sends instructors to the notebook's solutions button: it must exist
        nb = json.loads(workshop.notebook_path(nb_id).read_text(encoding="utf-8"))
        solutions = [c for c in nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
        assert solutions and "reveal_solutions" in "".join(solutions[0]["source"])


def test_every_notebook_has_hand_written_help():
    for nb_id in NOTEBOOKS:
        assert workshop.STUCK[nb_id] and len(workshop.DISCUSSION[nb_id]) >= 2, nb_id


def test_agendas_add_up_and_cover_the_course(guide):
    three, ninety = workshop.AGENDAS["3-hour workshop"], workshop.AGENDAS["90-minute workshop"]
    assert sum(m for m, _ in three) == 180 and sum(m for m, _ in ninety) == 90
    for agenda in (three, ninety):
        assert all(isinstance(m, int) and m > 0 and activity for m, activity in agenda)
        for nb_id in NOTEBOOKS:
            assert any(activity.startswith(nb_id + " ") for _, activity in agenda), nb_id
    assert "| 3:00 | | end (180 minutes) |" in guide and "| 1:30 | | end (90 minutes) |" in guide


def test_paths_and_commands_the_guide_names_exist(guide):
    for path in ("docs/SLIDES.md", "assets/reference", "course.py", "course_lib/data/quizzes"):
        assert path in guide and (ROOT / path).exists(), path
    assert "def main" in (ROOT / "course_lib" / "check.py").read_text()
    assert 'COURSE_FAST="${COURSE_FAST:-1}"' in (ROOT / "binder" / "start").read_text()  # "Binder runs in it"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "course_lib", *args], check=False, capture_output=True,
                          text=True, encoding="utf-8", cwd=ROOT)


def test_guide_command(guide, tmp_path):
    out = cli("guide")
    assert out.returncode == 0 and out.stdout == guide
    target = tmp_path / "guide.md"
    assert cli("guide", "-o", str(target)).returncode == 0
    assert target.read_text(encoding="utf-8") == guide
    bad = cli("guide", "-o", str(tmp_path / "no-such-folder" / "guide.md"))
    assert bad.returncode == 2 and "--output" in bad.stderr and "Traceback" not in bad.stderr


# ---------------------------------------------------------------------------- the slides
def slides():
    text = SLIDES.read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"(?ms)^## (\d\d) · .*?\n(.*?)(?=^---|\Z)", text)}


def test_slides_outline_every_notebook_in_five_to_eight_bullets():
    found = slides()
    assert sorted(found) == sorted(NOTEBOOKS)
    for nb_id, body in found.items():
        bullets = [line for line in body.splitlines() if line.startswith("- ")]
        assert 5 <= len(bullets) <= 8, (nb_id, len(bullets))


def test_slides_type_no_measured_or_computed_numbers():
    # a number followed by a unit is a result the notebooks compute; the slides give formulas instead
    unit = r"(?:ms|µs|us|s|[kMGT]?B|[KMG]iB|[GT]B/s|tokens/s|tok/s|[GT]?FLOP(?:/s)?|%|×|x\b)"
    hits = re.findall(rf"\b\d[\d.,]*\s*{unit}", SLIDES.read_text(encoding="utf-8"))
    assert not hits, hits
