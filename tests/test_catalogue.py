"""docs/bad-inputs.md is the generated catalogue (tests/catalogue.py): each test checks its own
rows; this checks the file as a whole."""

from __future__ import annotations

import re
from pathlib import Path

import catalogue

TESTS = Path(__file__).resolve().parent


def test_catalogue_is_generated_and_every_row_has_its_test() -> None:
    text = catalogue.DOC.read_text()
    assert text.startswith(catalogue.HEADER)
    rows = catalogue.read_doc()
    assert len(rows) >= 40
    assert text == catalogue.HEADER + "".join(rows[k] + "\n" for k in sorted(rows))
    for key in rows:
        m = re.fullmatch(r"(?P<file>test_\w+\.py)::(?P<func>test_\w+)(\[.*\])?#\d+", key)
        assert m, key
        source = (TESTS / m["file"]).read_text()
        assert f"def {m['func']}(" in source, f"{key}: no such test (regenerate the catalogue)"


def test_every_row_is_a_bad_input_of_one_line() -> None:
    for key, line in catalogue.read_doc().items():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 6, key
        assert cells[2].startswith("`synthtumor "), key
        assert cells[4] == "2", key
        assert cells[3], key


def test_rows_are_keyed_without_the_xdist_group_tag() -> None:
    """`--dist loadgroup` appends "@group" to a grouped test's node id; the catalogue's key
    drops exactly that, and keeps an "@" inside a parameter id."""
    def key(nodeid: str) -> str:
        return catalogue.Recorder(nodeid, "", None).nodeid

    assert key("tests/test_cli.py::test_x[a@b]@train") == "test_cli.py::test_x[a@b]"
    assert key("tests/test_cli.py::test_x[a@b]") == "test_cli.py::test_x[a@b]"
    assert key("tests/test_cli.py::test_x@bundle") == "test_cli.py::test_x"
    assert key("tests/test_cli.py::test_x") == "test_cli.py::test_x"
