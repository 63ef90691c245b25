"""The curated mutants (tests/mutations/mutants.py) cannot rot silently: each mutation still
applies, once, to the product code as it is and compiles, and each names tests that exist.
Running them is `python3 envol.py mutants`."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("mutants", ROOT / "tests" / "mutations" / "mutants.py")
assert spec is not None and spec.loader is not None
mutants = importlib.util.module_from_spec(spec)
sys.modules["mutants"] = mutants  # (its dataclasses look their module up there)
spec.loader.exec_module(mutants)


def test_every_mutation_applies_once_and_compiles():
    assert mutants.check(mutants.MUTANTS) == []


def test_names_are_unique_and_every_mutant_changes_something():
    names = [m.name for m in mutants.MUTANTS]
    assert len(names) == len(set(names))
    for mutant in mutants.MUTANTS:
        assert mutant.changes and all(original != replacement for original, replacement in mutant.changes)


def test_every_mutant_names_tests_that_exist():
    for mutant in mutants.MUTANTS:
        assert mutant.tests, mutant.name
        for test in mutant.test_ids():
            path, _, name = test.partition("::")
            function = re.sub(r"\[.*\]$", "", name)
            assert (ROOT / path).is_file(), (mutant.name, test)
            source = (ROOT / path).read_text()
            assert re.search(rf"^(async )?def {function}\(", source, re.M), (mutant.name, test)
            parameter = re.search(r"\[(.*)\]$", name)
            assert parameter is None or parameter.group(1) in ("sqlite", "postgresql"), (mutant.name, test)
