"""``make bench`` bookkeeping: a run merges its sections into docs/benchmarks.md and keeps the others."""

from __future__ import annotations

import pytest

run = pytest.importorskip("benchmarks.run")

OLD = """# Benchmarks

old header

## A

| method | setting | x |
|---|---|---|
| m1 | s | 1 |

## Standalone

written by another script
"""

NEW = """# Benchmarks

new header

## A

| method | setting | x |
|---|---|---|
| m1 | s | 2 |

## B

| method | setting | x |
|---|---|---|
| m2 | s | 3 |
"""


def test_merge_replaces_rerun_sections_keeps_the_others_and_appends_new_ones():
    merged = run.merge_sections(OLD, NEW)
    assert "new header" in merged and "old header" not in merged
    assert "| m1 | s | 2 |" in merged and "| m1 | s | 1 |" not in merged
    assert "written by another script" in merged  # a standalone section survives a run that did not produce it
    assert merged.index("## A") < merged.index("## Standalone") < merged.index("## B")


def test_a_rerun_note_replaces_the_note_of_its_method_and_keeps_the_others():
    old = OLD.replace("| m1 | s | 1 |", "| m1 | s | 1 |\n| m3 | s | 4 |\n\n- m1: old text\n- m3: kept")
    new = NEW.replace("| m1 | s | 2 |", "| m1 | s | 2 |\n\n- m1: new text\n- m4: added")
    merged = run.merge_sections(old, new)
    assert "- m1: new text" in merged and "old text" not in merged
    assert merged.index("- m1: new text") < merged.index("- m3: kept") < merged.index("- m4: added")


def test_full_run_covers_every_standalone_benchmark_and_only_selects_by_name():
    assert run.standalone("") == list(run.STANDALONE)
    assert run.standalone("lds") == ["influence_lds"]
    assert run.standalone("gradient") == []


def test_only_matching_no_case_leaves_the_file_untouched(tmp_path, monkeypatch):
    out = tmp_path / "bench.md"
    out.write_text(OLD)
    monkeypatch.setattr(run, "collect", lambda *args: [])
    monkeypatch.setattr(run, "collect_tables", lambda *args: {})
    assert run.main(["--only", "no-such-section", "--out", str(out)]) == 0
    assert out.read_text() == OLD
