"""The cached analysis of the instructor's cells (autograde/analysis_cache.py) plans exactly
what the uncached analysis plans, and is dropped where what it relied on no longer holds."""

from __future__ import annotations

import pickle

import pytest

from autograde import slicing
from autograde.analysis_cache import AnalysisCache
from autograde.course import assignments
from autograde.grader import plan, released_sources
from autograde.notebooks import read_notebook
from autograde.pruning import analyse, prunable


def _summary(p, skip):
    return ([(j.index, j.source, j.kind, j.grade_id, j.trusted) for j in p.jobs], skip,
            p.vetoed, p.flags)


@pytest.mark.parametrize("name", [a.name for a in assignments()])
def test_a_cached_plan_is_the_uncached_plan(name, tmp_path):
    a = next(x for x in assignments() if x.name == name)
    solution = read_notebook(a.source)
    released = released_sources(a)
    student = read_notebook(a.release) if a.release.exists() else solution
    for nb in (solution, student):
        base = plan(nb, solution, released)
        want = _summary(base, prunable(base.jobs, [j.trusted for j in base.jobs]))
        path = tmp_path / "analysis.pickle"
        first = AnalysisCache(path)
        p1 = plan(nb, solution, released, first)
        got1 = _summary(p1, prunable(p1.jobs, [j.trusted for j in p1.jobs], first.analyse))
        first.save()
        again = AnalysisCache(path)  # a later process: everything from the file
        assert again.units and not again.dirty
        p2 = plan(nb, solution, released, again)
        got2 = _summary(p2, prunable(p2.jobs, [j.trusted for j in p2.jobs], again.analyse))
        assert got1 == want and got2 == want
        assert not again.dirty  # nothing had to be analysed again


def test_units_are_stamped_copies(tmp_path):
    cache = AnalysisCache(None)
    src = "import numpy as np\nx = np.zeros(3)\n"
    one = cache.trusted_units(src, 4, "setup", "setup_a", "setup_a", 10)
    two = cache.trusted_units(src, 7, "test", "test_b", "test_b", 20)
    assert [u.pos for u in one] == [10, 11] and [u.pos for u in two] == [20, 21]
    assert {u.cell for u in one} == {4} and {(u.kind, u.grade_id) for u in two} == {
        ("test", "test_b")}
    one[1].binds.add("changed")
    assert "changed" not in two[1].binds
    assert "changed" not in cache.trusted_units(src, 0, "setup", None, "", 0)[1].binds
    info = cache.analyse(src)
    info.uses.add("changed")
    assert "changed" not in cache.analyse(src).uses
    assert cache.analyse(src) == analyse(src)


def test_an_entry_is_analysed_again_when_a_module_answer_changed(monkeypatch):
    cache = AnalysisCache(None)
    src = "from os import path\n"
    modules = {"os.path": True}
    monkeypatch.setattr(slicing, "is_module", lambda dotted: modules.get(dotted, False))
    # the patched function does not record: record by hand what the real one would
    with slicing.recording_module_queries():
        first = cache.trusted_units(src, 0, "setup", None, "", 0)
    cache.units[src] = (cache.units[src][0], {"os.path": True})
    assert first[0].modules == {"path": "os.path"}
    modules["os.path"] = False
    second = cache.trusted_units(src, 0, "setup", None, "", 0)
    assert second[0].modules == {}


def test_a_broken_cache_file_is_ignored(tmp_path):
    path = tmp_path / "analysis.pickle"
    path.write_bytes(b"not a pickle")
    cache = AnalysisCache(path)
    assert cache.units == {}
    cache.trusted_units("x = 1\n", 0, "setup", None, "", 0)
    cache.save()
    units, statements, infos = pickle.loads(path.read_bytes())
    assert "x = 1\n" in units
