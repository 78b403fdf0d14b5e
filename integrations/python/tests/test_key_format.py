"""Key format 2 on the Python side: the documented key pattern (docs/verifier.md, "Key
shapes") as `re` runs it, the standard-library snippet of the docs against every vector case,
and a typo told from an unknown key without any entry."""

import json
import os
import re

import pytest

from mcp_key_verifier import CHECKSUM, KEY_PATTERN, MALFORMED, SHAPE, Verifier

from conftest import VECTORS

DOCS = os.path.normpath(os.path.join(VECTORS, "..", "..", "..", "docs"))


def _load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as fh:
        return json.load(fh)


def _fenced(path, lang):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    return re.findall(r"```%s\n(.*?)```" % lang, text, re.S)


@pytest.mark.parametrize("doc", ["verifier.md", "commands.md"])
def test_the_docs_show_the_exported_pattern(doc):
    assert _fenced(os.path.join(DOCS, doc), "regex") == [KEY_PATTERN + "\n"]
    assert _load("key-pattern.json")["pattern"] == KEY_PATTERN


def test_the_pattern_finds_every_key_and_no_near_miss():
    corpus = _load("key-pattern.json")
    pattern = re.compile(KEY_PATTERN)
    for key in corpus["keys"]:
        assert pattern.fullmatch(key)
    missed = [n["why"] for n in corpus["near_misses"] if pattern.search(n["text"])]
    assert missed == []
    for t in corpus["texts"]:
        assert pattern.findall(t["text"]) == t["keys"]


def test_a_typo_is_malformed_by_checksum_without_any_entry():
    empty = Verifier.from_file(os.path.join(VECTORS, "empty.json"))
    key = _load("key-pattern.json")["keys"][0]
    assert key.startswith("mkm_")
    at = 30
    typo = key[:at] + ("Q" if key[at] != "Q" else "R") + key[at + 1:]
    v = empty.verify(typo)
    assert (v.code, v.reason) == (MALFORMED, CHECKSUM)
    assert empty.verify(key).reason is None
    assert empty.verify(key[:-1]).reason == SHAPE
    assert empty.verify(None).reason == SHAPE


def _doc_snippet():
    """The 'With a standard library only' code of docs/verifier.md, as shown."""
    with open(os.path.join(DOCS, "verifier.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text[text.index("### With a standard library only"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_documented_snippet_agrees_with_every_case():
    code = _doc_snippet()
    spec = _load("cases.json")
    verifiers = {}
    for case in spec["cases"]:
        name = case["verifier"]
        if name not in verifiers:
            path = os.path.join(VECTORS, name)
            scope = {"open": lambda _p, _path=path: open(_path, encoding="utf-8")}
            exec(compile(code, "docs/verifier.md", "exec"), scope)  # noqa: S102 - our own docs
            verifiers[name] = scope["verify"]
        got = verifiers[name](case["key"])
        # The snippet stops after the lookup: None means an entry was found.
        want = case["code"] if case["code"] in ("MALFORMED", "NOT_FOUND") else None
        assert got == want, case["why"]
