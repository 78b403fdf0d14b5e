#!/usr/bin/env python3
"""Writes the signed-verifier conformance vectors in this directory.

Every reader that takes a trust pin (docs/verifier.md, "Signatures and trust pins") and every
reader that reloads (the `save_digest` rule) runs these files. The bodies are `../basic.json`,
read as it is, so the keys of `../cases.json` keep their meaning here; the signatures are made
with two vault keys, A and B, derived from fixed labels. They are test keys and protect nothing.

Deterministic: fixed seeds, Ed25519 signatures (deterministic by definition, RFC 8032), sorted
output, no clock. Rerunning it reproduces every file byte for byte:

    /work/main/.ci/venv/bin/python tests/vectors/verifier/signed/generate.py

Needs the `cryptography` package (for Ed25519 signing only).
"""

import base64
import hashlib
import json
import os
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
PARENT = os.path.dirname(HERE)
CONTEXT = b"mcp-key-verifier/signature/v1\n"
LINE = re.compile(rb'\{\n  "signature": "ed25519:([A-Za-z0-9+/]{43}=):([A-Za-z0-9+/]{86}==)",\n')


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def seed(label):
    return hashlib.sha256(("mcp-key-verifier conformance vectors: vault key " + label)
                          .encode()).digest()


A = Ed25519PrivateKey.from_private_bytes(seed("A"))
B = Ed25519PrivateKey.from_private_bytes(seed("B"))


def public(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def fingerprint(pub):
    """docs/verifier.md: "mkv1:" + lowercase unpadded base32 of SHA-256(pub)[:20]."""
    assert len(pub) == 32
    return "mkv1:" + base64.b32encode(hashlib.sha256(pub).digest()[:20]).decode().lower()


FPR_A = fingerprint(public(A))
FPR_B = fingerprint(public(B))
assert len(FPR_A) == 5 + 32 and FPR_A != FPR_B


def signature_line(pub, sig):
    return ('  "signature": "ed25519:%s:%s",\n' % (b64(pub), b64(sig))).encode("ascii")


def sign(unsigned, key):
    """The signed file: `unsigned` (starting with "{\\n") with the signature line after "{\\n"."""
    assert unsigned.startswith(b"{\n")
    sig = key.sign(CONTEXT + unsigned)
    return b"{\n" + signature_line(public(key), sig) + unsigned[2:]


def replace_once(data, old, new):
    assert data.count(old) == 1, old
    return data.replace(old, new)


def check(data, pin):
    """The trust rule of docs/verifier.md, for the generator's own assertions: None when
    `data` is accepted under `pin`, else why not."""
    pin = pin.strip().lower()
    if not data.startswith(b'{\n  "signature": "'):
        return "unsigned"
    m = LINE.match(data)
    if m is None:
        return "malformed"
    pub, sig = base64.b64decode(m.group(1)), base64.b64decode(m.group(2))
    if b64(pub) != m.group(1).decode() or b64(sig) != m.group(2).decode():
        return "malformed"
    if fingerprint(pub) != pin:
        return "other vault"
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, CONTEXT + b"{\n" + data[m.end():])
    except InvalidSignature:
        return "bad signature"
    return None


def noncanonical(text):
    """The same bytes in base64 with the unused low bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = text.rstrip("=")
    last = alphabet.index(body[-1])
    assert last & 3 == 0
    return body[:-1] + alphabet[last | 1] + text[len(body):]


# --- the unsigned bodies ----------------------------------------------------------------------

with open(os.path.join(PARENT, "basic.json"), "rb") as fh:
    BASIC = fh.read()
with open(os.path.join(PARENT, "cases.json"), "rb") as fh:
    CASES = json.loads(fh.read())
assert BASIC.startswith(b'{\n  "format": "mcp-key-verifier",\n')
assert b'"signature"' not in BASIC and b'"save_digest"' not in BASIC


def basic_case(name, code, require):
    c = next(c for c in CASES["cases"] if c["verifier"] == "basic.json" and c["name"] == name
             and c["code"] == code and c["require"] == require)
    return c


CI_BOT = basic_case("ci-bot", "VALID", ["info"])
OLD_LAPTOP = basic_case("old-laptop", "REVOKED", [])


def digest_of(label):
    """A save_digest: the SHA-256 of a (here imaginary) vault file."""
    return hashlib.sha256(("vault file: " + label).encode()).hexdigest()


def with_digest(body, digest, revision=17):
    """`body` (revision 17) with `revision` and a save_digest member after it."""
    return replace_once(body, b'  "revision": 17,\n',
                        b'  "revision": %d,\n  "save_digest": "%s",\n'
                        % (revision, digest.encode("ascii")))


def revoke(body, key_id):
    """`body` with the entry `key_id`, active in basic.json, revoked."""
    at = body.index(('"id": "%s"' % key_id).encode())
    end = body.index(b'"status": "active"', at) + len(b'"status": "active"')
    return body[:end - len(b'"active"')] + b'"revoked"' + body[end:]


def unrevoke(body, key_id):
    at = body.index(('"id": "%s"' % key_id).encode())
    end = body.index(b'"status": "revoked"', at) + len(b'"status": "revoked"')
    return body[:end - len(b'"revoked"')] + b'"active"' + body[end:]


X = digest_of("x")
Y = digest_of("y")
Z = digest_of("z")
# Revision 18: a later save that revoked ci-bot.
BODY_18 = with_digest(revoke(BASIC, CI_BOT["key_id"]), Z, revision=18)

SIGNED_A = sign(BASIC, A)
SIG_A_LINE = SIGNED_A[2:SIGNED_A.index(b"\n", 2) + 1]


def flip_bit(signed):
    m = LINE.match(signed)
    sig = bytearray(base64.b64decode(m.group(2)))
    sig[0] ^= 0x01
    return replace_once(signed, m.group(2), b64(bytes(sig)).encode())


def reindented(signed):
    """The same JSON document written with another indentation (a formatter ran over it)."""
    doc = json.loads(signed)
    return (json.dumps(doc, indent=4, ensure_ascii=True) + "\n").encode("ascii")


FILES = {
    # Trust.
    "unsigned.json": (BASIC, "basic.json as it is: no signature line"),
    "signed-a.json": (SIGNED_A, "basic.json signed by vault A"),
    "signed-b.json": (sign(BASIC, B), "basic.json signed by vault B"),
    "tampered.json": (replace_once(SIGNED_A, b'  "revision": 17,\n', b'  "revision": 97,\n'),
                      "signed by A, then one byte changed: revision 17 became 97"),
    "bad-signature-bit.json": (flip_bit(SIGNED_A),
                               "signed by A with one bit of the signature flipped"),
    "malformed-signature-short.json": (
        replace_once(SIGNED_A, LINE.match(SIGNED_A).group(2),
                     LINE.match(SIGNED_A).group(2)[1:]),
        "the signature is 87 base64 characters, not 88"),
    "malformed-signature-scheme.json": (
        replace_once(SIGNED_A, b'"ed25519:', b'"Ed25519:'),
        "the scheme is Ed25519:, not ed25519:"),
    "malformed-signature-public-key-noncanonical.json": (
        replace_once(SIGNED_A, LINE.match(SIGNED_A).group(1),
                     noncanonical(LINE.match(SIGNED_A).group(1).decode()).encode()),
        "the public key is not canonical base64 (non-zero trailing bits; it decodes to A's key "
        "and the signature would verify)"),
    "malformed-signature-crlf.json": (
        replace_once(SIGNED_A, SIG_A_LINE, SIG_A_LINE[:-1] + b"\r\n"),
        "the signature line ends with CR LF"),
    "signed-a-reindented.json": (reindented(SIGNED_A),
                                 "signed by A, then rewritten with 4-space indentation"),
    "signature-not-first.json": (
        replace_once(BASIC, b'  "format": "mcp-key-verifier",\n',
                     b'  "format": "mcp-key-verifier",\n' + SIG_A_LINE),
        "A's signature line for this very body, as the second member instead of the first"),
    "unsigned-18.json": (BODY_18, "revision 18 (ci-bot revoked), unsigned"),
    "other-vault-18.json": (sign(BODY_18, B), "revision 18 (ci-bot revoked), signed by B"),
    # save_digest.
    "digest-17-x.json": (sign(with_digest(BASIC, X), A), "revision 17, save_digest X"),
    "digest-17-x-again.json": (
        sign(with_digest(replace_once(BASIC, b'"2026-05-31T12:00:00Z"', b'"2026-05-31T12:05:00Z"'),
                         X), A),
        "revision 17, save_digest X, written again five minutes later"),
    "digest-17-y.json": (sign(with_digest(unrevoke(BASIC, OLD_LAPTOP["key_id"]), Y), A),
                         "revision 17, save_digest Y: another save that never revoked "
                         "old-laptop"),
    "digest-18-z.json": (sign(BODY_18, A), "revision 18, save_digest Z: ci-bot revoked"),
    # Invalid even without a pin (based on revision 18: a reader that took one would show it).
    "bad-save-digest-uppercase.json": (sign(with_digest(revoke(BASIC, CI_BOT["key_id"]),
                                                        Z.upper(), 18), A),
                                       "save_digest in uppercase hex"),
    "bad-save-digest-63.json": (sign(with_digest(revoke(BASIC, CI_BOT["key_id"]), Z[:63], 18), A),
                                "save_digest of 63 hex characters"),
    "bad-save-digest-number.json": (
        sign(replace_once(BASIC, b'  "revision": 17,\n',
                          b'  "revision": 18,\n  "save_digest": 17,\n'), A),
        "save_digest is a number, not a string"),
}

# The trust pin written as a user may paste it: upper case, surrounded by whitespace.
FPR_A_PASTED = " \t" + FPR_A.upper() + " \n"

TRUST = [
    # (verifier, trust pin or None, accepted, why)
    ("signed-a.json", FPR_A, True, "signed by the trusted vault"),
    ("signed-a.json", FPR_A_PASTED, True,
     "the pin is compared lowercased and without surrounding whitespace"),
    ("signed-a.json", None, True, "no pin: the signature is not checked"),
    ("signed-b.json", FPR_B, True, "signed by vault B, B trusted"),
    ("signed-b.json", FPR_A, False, "signed by another vault than the pin"),
    ("signed-a.json", FPR_B, False, "signed by A, only B trusted"),
    ("signed-a.json", FPR_A[len("mkv1:"):], False,
     "a pin without its mkv1: prefix matches nothing"),
    ("signed-a.json", "", False, "an empty pin is a pin: it matches no fingerprint"),
    ("unsigned.json", FPR_A, False, "an unsigned file under a pin"),
    ("unsigned.json", None, True, "an unsigned file without a pin"),
    ("tampered.json", FPR_A, False, "one byte changed after signing"),
    ("tampered.json", None, True, "no pin: a tampered file is not detected"),
    ("bad-signature-bit.json", FPR_A, False, "one bit of the signature flipped"),
    ("bad-signature-bit.json", None, True, "no pin: the signature is one more field"),
    ("malformed-signature-short.json", FPR_A, False, "a signature of 87 base64 characters"),
    ("malformed-signature-short.json", None, True, "no pin: not checked"),
    ("malformed-signature-scheme.json", FPR_A, False, "the scheme is case-sensitive"),
    ("malformed-signature-public-key-noncanonical.json", FPR_A, False,
     "the public key must be canonical base64 (the signature itself would verify)"),
    ("malformed-signature-crlf.json", FPR_A, False, "the signature line must end with LF"),
    ("malformed-signature-crlf.json", None, True, "no pin: CR LF is JSON whitespace"),
    ("signed-a-reindented.json", FPR_A, False,
     "a signed file rewritten with another indentation: the signature line is not the "
     "expected bytes"),
    ("signed-a-reindented.json", None, True, "no pin: any formatting is JSON"),
    ("signature-not-first.json", FPR_A, False,
     "a signature member that is not the first line is an unsigned file (even though "
     "removing that line gives the signed bytes)"),
    ("signature-not-first.json", None, True, "no pin: the signature is one more field"),
    ("unsigned-18.json", FPR_A, False, "an unsigned file of a higher revision"),
    ("other-vault-18.json", FPR_A, False, "another vault's file of a higher revision"),
    ("digest-17-x.json", FPR_A, True, "signed by A, with a save_digest"),
    ("digest-18-z.json", FPR_A, True, "signed by A, revision 18"),
]

RELOAD = [
    # (first, then, trust, replaced, (key case), why): `key` verified at `now` after `then` was
    # offered must give its code; `revision` is the loaded revision afterwards.
    ("digest-17-x.json", "digest-17-y.json", None, False, OLD_LAPTOP,
     "same revision, another save_digest: a conflict, kept out (old-laptop stays revoked)"),
    ("digest-17-x.json", "digest-17-y.json", FPR_A, False, OLD_LAPTOP,
     "a conflict is kept out even when correctly signed"),
    ("digest-17-x.json", "digest-17-x-again.json", None, True, CI_BOT,
     "same revision, same save_digest: the same state written again"),
    ("digest-17-x.json", "digest-18-z.json", None, True, CI_BOT,
     "a higher revision replaces (ci-bot revoked in it)"),
    ("digest-17-x.json", "digest-18-z.json", FPR_A, True, CI_BOT,
     "a higher revision signed by the trusted vault replaces"),
    ("digest-18-z.json", "digest-17-x.json", None, False, CI_BOT,
     "a lower revision is kept out"),
    ("signed-a.json", "digest-17-y.json", None, True, OLD_LAPTOP,
     "the loaded file has no save_digest: same revision, nothing to compare, replaced"),
    ("digest-17-x.json", "signed-a.json", None, True, CI_BOT,
     "the new file has no save_digest: same revision, nothing to compare, replaced"),
    ("digest-17-x.json", "bad-save-digest-uppercase.json", None, False, CI_BOT,
     "an invalid save_digest makes the file invalid: kept out"),
    ("signed-a.json", "signed-b.json", FPR_A, False, CI_BOT,
     "trusting A: another vault's file is kept out"),
    ("signed-a.json", "other-vault-18.json", FPR_A, False, CI_BOT,
     "trusting A: another vault's newer file is kept out (ci-bot stays valid)"),
    ("signed-a.json", "other-vault-18.json", None, True, CI_BOT,
     "no pin: another vault's newer file replaces"),
    ("signed-a.json", "unsigned-18.json", FPR_A, False, CI_BOT,
     "trusting A: an unsigned newer file is kept out"),
    ("signed-a.json", "tampered.json", FPR_A, False, CI_BOT,
     "trusting A: a tampered file (revision 97) is kept out"),
    ("signed-a.json", "tampered.json", None, True, CI_BOT,
     "no pin: the tampered file's revision 97 replaces"),
    ("signed-a.json", "signature-not-first.json", FPR_A, False, CI_BOT,
     "trusting A: a signature that is not the first line is kept out"),
]

INVALID = [
    ("bad-save-digest-uppercase.json", "save_digest in uppercase hex (64 lowercase hex only)"),
    ("bad-save-digest-63.json", "save_digest of 63 hex characters"),
    ("bad-save-digest-number.json", "save_digest is not a string"),
]


def revision_of(data):
    return json.loads(data).get("revision", 0)


def code_in(data, case):
    """The verdict code of `case`'s key in the (valid) file `data`, for the cases' assertions:
    only status and the expiry of these two keys (both in the future or absent) differ."""
    doc = json.loads(data)
    e = next(k for k in doc["keys"] if k["id"] == case["key_id"])
    return "REVOKED" if e["status"] == "revoked" else "VALID"


def main():
    out = {name: data for name, (data, _) in FILES.items()}
    trust = []
    for verifier, pin, ok, why in TRUST:
        got = check(out[verifier], pin) if pin is not None else None
        assert (got is None) == ok, (verifier, pin, got)
        trust.append({"verifier": verifier, "trust": pin, "ok": ok, "why": why})
    reload = []
    for first, then, pin, replaced, case, why in RELOAD:
        assert pin is None or check(out[first], pin) is None, first
        loaded = out[then] if replaced else out[first]
        reload.append({"first": first, "then": then, "trust": pin, "replaced": replaced,
                       "revision": revision_of(loaded), "key": case["key"],
                       "code": code_in(loaded, case), "why": why})
    names = {n for n, _ in INVALID}
    assert all(check(out[n], FPR_A) is None for n in names)
    out["cases.json"] = (json.dumps({
        "now": CASES["now"],
        "fingerprints": [{"public_key": b64(public(A)), "fingerprint": FPR_A},
                         {"public_key": b64(public(B)), "fingerprint": FPR_B}],
        "verify": [
            {"verifier": "signed-a.json", "trust": FPR_A, "key": c["key"],
             "require": c["require"], "code": c["code"], "key_id": c["key_id"],
             "name": c["name"], "why": "after a trusted load: " + c["why"]}
            for c in (CI_BOT, OLD_LAPTOP)],
        "trust": trust,
        "reload": reload,
        "invalid": [{"verifier": n, "why": w} for n, w in INVALID],
        "files": {name: why for name, (_, why) in sorted(FILES.items())},
    }, indent=2, ensure_ascii=True) + "\n").encode("ascii")
    for name, data in sorted(out.items()):
        with open(os.path.join(HERE, name), "wb") as fh:
            fh.write(data)
    sys.stdout.write("wrote %d files to %s\n" % (len(out), HERE))


if __name__ == "__main__":
    main()
