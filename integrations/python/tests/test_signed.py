"""Signed verifier files, trust pins and save_digest: every vector in
tests/vectors/verifier/signed/, and reloading under a pin (docs/verifier.md)."""

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import mcp_key_verifier._core as core
from mcp_key_verifier import Verifier, VerifierError, fingerprint

from conftest import VECTORS, make_key

SIGNED = os.path.join(VECTORS, "signed")
with open(os.path.join(SIGNED, "cases.json"), encoding="utf-8") as _fh:
    SPEC = json.load(_fh)
NOW = dt.datetime.fromisoformat(SPEC["now"].replace("Z", "+00:00"))


def vector(name):
    return os.path.join(SIGNED, name)


def read(name):
    with open(vector(name), "rb") as fh:
        return fh.read()


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def replace(path, data):
    """Replaces the file at `path` by rename, as the vault does."""
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, str(path))


# --- the vectors ------------------------------------------------------------------------------

def test_the_signed_vectors_are_there():
    assert len(SPEC["fingerprints"]) == 2
    assert len(SPEC["trust"]) >= 20 and len(SPEC["reload"]) >= 10 and len(SPEC["invalid"]) >= 2
    assert {c["ok"] for c in SPEC["trust"]} == {True, False}
    assert {c["replaced"] for c in SPEC["reload"]} == {True, False}


@pytest.mark.parametrize("f", SPEC["fingerprints"], ids=lambda f: f["fingerprint"])
def test_fingerprint(f):
    assert fingerprint(base64.b64decode(f["public_key"])) == f["fingerprint"]


def test_fingerprint_takes_32_bytes_only():
    assert fingerprint(bytearray(32)) == fingerprint(bytes(32))
    assert len(fingerprint(bytes(32))) == len("mkv1:") + 32
    with pytest.raises(ValueError):
        fingerprint(bytes(31))
    with pytest.raises(ValueError):
        fingerprint(bytes(33))


@pytest.mark.parametrize("case", SPEC["trust"], ids=lambda c: c["why"])
def test_trust(case):
    path = vector(case["verifier"])
    if case["ok"]:
        assert Verifier.from_file(path, trust=case["trust"]).revision >= 0
        assert len(Verifier.from_json(read(case["verifier"]), trust=case["trust"])) > 0
    else:
        with pytest.raises(VerifierError) as err:
            Verifier.from_file(path, trust=case["trust"])
        assert path in str(err.value) and "not a trusted verifier file" in str(err.value)
        with pytest.raises(VerifierError):
            Verifier.from_json(read(case["verifier"]), trust=case["trust"])


@pytest.mark.parametrize("case", SPEC["verify"], ids=lambda c: c["why"])
def test_verification_after_a_trusted_load(case):
    v = Verifier.from_file(vector(case["verifier"]), trust=case["trust"])
    verdict = v.verify(case["key"], case["require"], now=NOW)
    assert verdict.code == case["code"]
    assert verdict.key_id == case["key_id"]
    assert verdict.name == case["name"]


@pytest.mark.parametrize("bad", SPEC["invalid"], ids=lambda c: c["verifier"])
def test_invalid_without_a_pin(bad):
    path = vector(bad["verifier"])
    with pytest.raises(VerifierError) as err:
        Verifier.from_file(path)
    assert path in str(err.value) and "save_digest" in str(err.value)
    with pytest.raises(VerifierError):
        Verifier.from_json(read(bad["verifier"]))


@pytest.mark.parametrize("case", SPEC["reload"], ids=lambda c: c["why"])
def test_reload(case, tmp_path):
    path = tmp_path / "verifier.json"
    replace(path, read(case["first"]))
    errors = []
    # A long interval: only the explicit refresh() below looks at the file.
    v = Verifier.from_file(path, trust=case["trust"], on_reload_error=errors.append,
                           reload_interval=3600)
    replace(path, read(case["then"]))
    assert v.refresh() == case["replaced"]
    assert v.revision == case["revision"]
    assert v.verify(case["key"], now=NOW).code == case["code"]
    if case["replaced"]:
        assert errors == []
    else:
        assert len(errors) == 1 and str(path) in str(errors[0])
    assert v.refresh() is False  # the same file is not looked at twice


def test_save_digest_is_read():
    assert Verifier.from_file(vector("digest-17-x.json")).save_digest == json.loads(
        read("digest-17-x.json"))["save_digest"]
    assert Verifier.from_file(vector("signed-a.json")).save_digest is None


# --- what the pin does ------------------------------------------------------------------------

def test_refusals_say_why_without_a_key():
    fpr_a, fpr_b = (f["fingerprint"] for f in SPEC["fingerprints"])
    reasons = {
        ("unsigned.json", fpr_a): "it is not signed",
        ("signature-not-first.json", fpr_a): "it is not signed",
        ("malformed-signature-short.json", fpr_a): "the signature line is malformed",
        ("malformed-signature-public-key-noncanonical.json", fpr_a): "not canonical base64",
        ("signed-b.json", fpr_a): "signed by the vault %s, not by the trusted %s" % (fpr_b, fpr_a),
        ("tampered.json", fpr_a): "the signature does not verify",
        ("bad-signature-bit.json", fpr_a): "the signature does not verify",
        ("signed-a.json", "mkv1:nope"): "not by the trusted pin (which is not a fingerprint",
    }
    for (name, pin), reason in reasons.items():
        with pytest.raises(VerifierError) as err:
            Verifier.from_file(vector(name), trust=pin)
        assert reason in str(err.value), name
        doc = json.loads(read(name))
        assert doc["hash_key"] not in str(err.value)


def test_trust_must_be_a_string():
    with pytest.raises(TypeError):
        Verifier.from_file(vector("signed-a.json"), trust=b"mkv1:x")


def test_a_pin_without_cryptography_fails_clearly(monkeypatch):
    monkeypatch.setattr(core, "_ed25519_public_key", None)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.ed25519", None)
    with pytest.raises(ImportError) as err:
        Verifier.from_file(vector("signed-a.json"), trust=SPEC["fingerprints"][0]["fingerprint"])
    assert "cryptography" in str(err.value) and "mcp-key-verifier[trust]" in str(err.value)
    # Without a pin nothing is needed.
    assert Verifier.from_file(vector("signed-a.json")).revision == 17


def test_the_core_imports_no_cryptography_without_a_pin():
    code = ("import sys, mcp_key_verifier as m; v = m.Verifier.from_file(sys.argv[1]); "
            "m.fingerprint(bytes(32)); assert v.revision == 17; "
            "assert not [n for n in sys.modules if n.split('.')[0] == 'cryptography'], 'imported'")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code, vector("signed-a.json")], check=True, cwd=here,
                   timeout=60)


# --- reloading under a pin, with files signed here --------------------------------------------

class Vault:
    """A vault's signing key: signs documents as docs/verifier.md says."""

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.fingerprint = fingerprint(self.public)

    def sign(self, unsigned):
        assert unsigned.startswith(b"{\n")
        sig = self.key.sign(b"mcp-key-verifier/signature/v1\n" + unsigned)
        line = '  "signature": "ed25519:%s:%s",\n' % (base64.b64encode(self.public).decode(),
                                                       base64.b64encode(sig).decode())
        return b"{\n" + line.encode() + unsigned[2:]


def test_a_pinned_reader_keeps_its_file_against_unsigned_foreign_and_tampered_ones(writer):
    vault, other = Vault(), Vault()
    key_id, key = make_key()
    writer.write(None, None, raw=vault.sign(writer.document([writer.entry(key_id, key)], 1)))
    errors = []
    v = Verifier.from_file(writer.path, trust=vault.fingerprint, on_reload_error=errors.append)
    assert v.verify(key).valid

    # Each of these would revoke the key at a higher revision; none may be used.
    revoked = writer.document([writer.entry(key_id, key, status="revoked")], 2)
    tampered = vault.sign(writer.document([writer.entry(key_id, key)], 2)).replace(
        b'"status": "active"', b'"status": "revoked"')
    assert tampered.count(b'"revoked"') == 1
    for raw, reason in [(revoked, "it is not signed"),
                        (other.sign(revoked), "signed by the vault " + other.fingerprint),
                        (tampered, "the signature does not verify")]:
        n = len(errors)
        writer.write(None, None, raw=raw)
        assert wait_for(lambda: (v.verify(key), len(errors) > n)[1]), reason
        assert reason in str(errors[-1]) and "keeping revision 1" in str(errors[-1])
        for _ in range(15):  # looked at again: still the old file, reported once
            assert v.verify(key).valid
            time.sleep(0.02)
        assert len(errors) == n + 1
        assert v.revision == 1

    # The vault's own newer file is taken.
    writer.write(None, None, raw=vault.sign(revoked))
    assert wait_for(lambda: v.verify(key).code == "REVOKED")
    assert v.revision == 2
    assert key not in "".join(str(e) for e in errors)


def test_a_save_digest_conflict_is_kept_out(writer):
    x, y = "a" * 64, "b" * 64
    key_id, key = make_key()
    writer.write(None, None, raw=writer.document([writer.entry(key_id, key)], 5, save_digest=x))
    errors = []
    v = Verifier.from_file(writer.path, on_reload_error=errors.append)
    assert v.save_digest == x
    # Another save that claims revision 5 (a vault restored from a backup, changed again).
    writer.write(None, None, raw=writer.document([writer.entry(key_id, key, status="revoked")],
                                                 5, save_digest=y))
    assert wait_for(lambda: (v.verify(key), errors)[1])
    assert "conflicts with the loaded revision 5" in str(errors[0])
    assert v.verify(key).valid and v.save_digest == x
    # The same save written again is taken.
    writer.write(None, None, raw=writer.document([writer.entry(key_id, key, name="again")], 5,
                                                 save_digest=x))
    assert wait_for(lambda: v.verify(key).name == "again")
    # A later save is taken, whatever its digest.
    writer.write(None, None, raw=writer.document([writer.entry(key_id, key, status="revoked")],
                                                 6, save_digest=y))
    assert wait_for(lambda: v.verify(key).code == "REVOKED")
    assert v.save_digest == y and len(errors) == 1


def test_a_null_save_digest_is_absent():
    doc = json.loads(read("digest-17-x.json"))
    doc["save_digest"] = None
    assert Verifier.from_json(json.dumps(doc)).save_digest is None
