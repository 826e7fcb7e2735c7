"""Fixtures shared by the unit tests: one fake machine profile, and a private profile cache."""

import pytest
from helpers import make_profile


@pytest.fixture(autouse=True)
def _private_profile_cache(tmp_path, monkeypatch):
    """Every test gets its own profile cache, so none reads or writes the learner's."""
    monkeypatch.setenv("COURSE_LIB_CACHE_DIR", str(tmp_path / "profile-cache"))


@pytest.fixture
def fake_profile():
    return make_profile()
