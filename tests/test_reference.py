"""reference: the recorded GPU runs load, are labelled, and hold what the notebooks read."""

import json

import pytest

from course_lib import reference
from course_lib.profile import MachineProfile  # noqa: F401  (profile_rows takes one)


def test_shipped_reference_has_what_notebooks_use():
    names = reference.cards()
    assert names, "assets/reference/ holds no recorded GPU run"
    ref = reference.load(names[0])
    assert "recorded on" in reference.label(ref) and ref["provenance"]["device"] == "cuda"
    eager, graph = reference.decode_records(ref, "eager"), reference.decode_records(ref, "cuda-graph")
    assert eager and graph and eager[0]["bytes_per_token"] <= eager[-1]["bytes_per_token"]
    assert {r["batch"] for r in ref["batch_sweep"]} >= {1, 32} and ref["prefill_sweep"]
    rows = reference.profile_rows(ref)
    assert rows[0]["reference"] > 1e11 and rows[0]["mine"] is None


def test_missing_folder_and_unknown_card(tmp_path):
    assert reference.cards(tmp_path) == [] and reference.load(folder=tmp_path) is None
    (tmp_path / "x.json").write_text(json.dumps({"records": []}))
    with pytest.raises(ValueError, match="card='y'"):
        reference.load("y", folder=tmp_path)
