"""The secret-scanner rules of docs/scanning/ (gitleaks TOML, trufflehog YAML), read with real
TOML and YAML parsers and applied as the scanners apply them (the pattern, the keyword
prefilter, the entropy floor on the captured key) with Python's `re`, to the shared corpus
tests/vectors/verifier/key-pattern.json."""

import collections
import json
import math
import os
import re

import pytest

from mcp_key_verifier import KEY_PATTERN

from conftest import VECTORS
from sdkutil import need

SCANNING = os.path.normpath(os.path.join(VECTORS, "..", "..", "..", "docs", "scanning"))


class Rule:
    def __init__(self, name, pattern, group, entropy, keywords):
        self.name = name
        self.regex = re.compile(pattern)
        self.group = group
        self.entropy = entropy
        self.keywords = keywords

    def finds(self, text):
        if not any(k.lower() in text.lower() for k in self.keywords):
            return []
        found = (m.span(self.group) for m in self.regex.finditer(text) if m.group(self.group))
        return [s for s in found if _entropy(text[s[0]:s[1]]) >= self.entropy]


def _entropy(s):
    counts = collections.Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _gitleaks():
    tomllib = need("tomllib")
    with open(os.path.join(SCANNING, "gitleaks.toml"), "rb") as fh:
        config = tomllib.load(fh)
    assert config["extend"]["useDefault"] is True
    return [Rule(r["id"], r["regex"], r["secretGroup"], r["entropy"], r["keywords"])
            for r in config["rules"]]


def _trufflehog():
    yaml = need("yaml")
    with open(os.path.join(SCANNING, "trufflehog.yaml"), encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    [d] = config["detectors"]
    assert set(d) == {"name", "keywords", "regex", "entropy"}
    [pattern] = d["regex"].values()
    return [Rule(d["name"], pattern, 1, d["entropy"], d["keywords"])]


def _corpus():
    with open(os.path.join(VECTORS, "key-pattern.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _found(rules, text):
    return [text[a:b] for a, b in sorted(s for r in rules for s in r.finds(text))]


@pytest.mark.parametrize("scanner", ["gitleaks", "trufflehog"])
def test_each_scanner_finds_every_key_and_nothing_else(scanner):
    rules = _gitleaks() if scanner == "gitleaks" else _trufflehog()
    corpus = _corpus()
    for key in corpus["keys"]:
        assert _found(rules, key) == [key]
    for t in corpus["texts"]:
        assert _found(rules, t["text"]) == t["keys"]
    matched = [n["why"] for n in corpus["near_misses"] if _found(rules, n["text"])]
    assert matched == []
    for p in corpus["placeholders"]:
        assert re.fullmatch(KEY_PATTERN, p), "a placeholder has a key's shape"
        assert _found(rules, p) == [], "the entropy floor drops it"


def test_the_scanners_agree_with_each_other_and_the_key_pattern():
    gitleaks, trufflehog = _gitleaks(), _trufflehog()
    corpus = _corpus()
    texts = corpus["keys"] + [t["text"] for t in corpus["texts"]]
    texts += [n["text"] for n in corpus["near_misses"]]
    for text in texts:
        assert _found(gitleaks, text) == _found(trufflehog, text)
        assert _found(gitleaks, text) == re.findall(KEY_PATTERN, text)


def test_real_keys_clear_the_entropy_floor():
    # 2,000 keys of each format drawn as the tool draws them (format 2's checksum does not
    # change its entropy much): the floor is well under the least of them.
    import secrets
    b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    floor = _trufflehog()[0].entropy
    v1 = min(_entropy("mcp_%s_%s" % (secrets.token_hex(8), secrets.token_hex(32)))
             for _ in range(2000))
    v2 = min(_entropy("mkm_%s_%s" % (secrets.token_hex(8),
                                     "".join(secrets.choice(b62) for _ in range(49))))
             for _ in range(2000))
    assert floor + 0.15 < v1 < v2
