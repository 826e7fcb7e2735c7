"""Fixtures shared by the unit tests: one fake machine profile, and a private profile cache."""

import pytest
from helpers import FAKE_COSTS, make_profile


@pytest.fixture(autouse=True)
def _private_profile_cache(tmp_path, monkeypatch):
    """Every test gets its own profile cache, so none reads or writes the learner's."""
    monkeypatch.setenv("COURSE_LIB_CACHE_DIR", str(tmp_path / "profile-cache"))


@pytest.fixture
def fake_profile():
    return make_profile()


@pytest.fixture
def fake_machine(monkeypatch):
    """The fake profile, with a 10 GB/s kernel roof and FAKE_COSTS for the small ops, so that
    records' budgets can be checked by hand (the real microbenchmarks are tested in test_roofs)."""
    from course_lib import measure

    monkeypatch.setattr(measure, "kernel_roof", lambda *args: 10e9)
    monkeypatch.setattr(measure, "best_layout", lambda *args: "out_in")
    monkeypatch.setattr(measure, "small_op_costs", lambda *args: FAKE_COSTS)
    return make_profile()
