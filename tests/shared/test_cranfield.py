"""embshared.io's Cranfield parser against facts stated in the collection's README."""

from __future__ import annotations

import pytest

from embshared.io import DataError, load_cranfield


@pytest.fixture(scope="module")
def cranfield(shared_data):
    return load_cranfield(shared_data / "cranfield")


def test_records_queries_and_graded_qrels(cranfield):
    assert len(cranfield.records) == 1400
    first = cranfield.records[0]
    assert first["_id"] == "1" and first["author"] == "brenckman,m."
    assert first["title"] == "experimental investigation of the aerodynamics of a wing in a slipstream ."
    assert first["source"] == "j. ae. scs. 25, 1958, 324."
    assert first["text"].startswith("experimental investigation of the aerodynamics")
    assert len(cranfield.queries) == 225
    # qrels name queries by position: the 3rd query is ".I 004" in cran.qry
    assert cranfield.queries["3"] == "what problems of heat conduction in composite slabs have been solved so far ."
    assert cranfield.qrels["1"]["184"] == 3  # code 2 -> grade 5 - 2
    codes = [5 - g for rels in cranfield.qrels.values() for g in rels.values()]
    assert {c: codes.count(c) for c in (1, 2, 3, 4)} == {1: 128, 2: 387, 3: 734, 4: 363}  # README counts
    assert len(cranfield.source_docs) == 225 and cranfield.source_docs["1"] == "486"  # the -1 lines
    assert all(cranfield.source_docs[q] not in rels for q, rels in cranfield.qrels.items())


def test_missing_file_is_named(tmp_path):
    (tmp_path / "cran.all.1400").write_text(".I 1\n.W\nsome text\n")
    with pytest.raises(DataError, match=r"cran.qry: no such file"):
        load_cranfield(tmp_path)
