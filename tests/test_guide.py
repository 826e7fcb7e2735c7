"""docs/INSTRUCTOR_GUIDE.md is built by docs/build_guide.py, never edited by hand."""

import importlib.util
from pathlib import Path

import pytest

from course_lib import quiz

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "INSTRUCTOR_GUIDE.md"
_spec = importlib.util.spec_from_file_location("build_guide", ROOT / "docs" / "build_guide.py")
build_guide = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_guide)


@pytest.fixture(scope="module")
def built():
    return build_guide.build()


def test_committed_guide_is_the_built_one(built):
    assert GUIDE.read_text(encoding="utf-8") == built, "docs/INSTRUCTOR_GUIDE.md is stale: python docs/build_guide.py"


def test_check_mode_fails_on_a_stale_guide(built, tmp_path):
    target = tmp_path / "guide.md"
    target.write_text(built, encoding="utf-8")
    assert build_guide.main(["--check", "-o", str(target)]) == 0
    target.write_text(built.replace("COURSE_FAST=1", "COURSE_FAST=0", 1), encoding="utf-8")
    assert build_guide.main(["--check", "-o", str(target)]) == 1


def test_guide_has_every_notebook_and_answer_key_and_the_one_switch(built):
    for nb_id in quiz.notebook_ids():
        assert (ROOT / "docs" / "guide" / f"notebook_{nb_id}.md").exists(), nb_id
        assert f"### Answer key, quiz {nb_id}: " in built
        assert f"`notebooks/{nb_id}_" in built, f"notebook {nb_id} missing from section 6"
    assert "%env COURSE_FAST=1" in built and "reset_quizzes()" in built
    assert "COURSE_WORKSHOP" not in built and "workshop.enable" not in built
