#!/usr/bin/env python3
"""Test tool (tests/cli/trust.rs): forges a format-2 vault that the VICTIM's passphrase
opens, with the FORGER's data key and signing key, by copying the victim's (public)
passphrase slot and wrapping the forger's data key to that slot's (public) recipient. Needs
the `cryptography` package and the `age` command line.

usage: forge.py FORGER_VAULT FORGER_AGE_KEY VICTIM_VAULT OUT [--strip-binding] [extra-lineage-digest-hex ...]
       forge.py --decrypt VAULT AGE_KEY   (print the decrypted payload, hex)
"""
import base64, hashlib, json, os, struct, subprocess, sys
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

b64 = lambda b: base64.b64encode(b).decode()
ub64 = base64.b64decode

def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 7)
def hchacha20(key, n16):
    s = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', n16))
    for _ in range(10):
        qr(s, 0, 4, 8, 12); qr(s, 1, 5, 9, 13); qr(s, 2, 6, 10, 14); qr(s, 3, 7, 11, 15)
        qr(s, 0, 5, 10, 15); qr(s, 1, 6, 11, 12); qr(s, 2, 7, 8, 13); qr(s, 3, 4, 9, 14)
    return struct.pack('<8I', *(s[0:4] + s[12:16]))
def xc(key, nonce):
    return ChaCha20Poly1305(hchacha20(key, nonce[:16])), b'\0' * 4 + nonce[16:]
def xopen(key, nonce, ad, ct):
    c, n = xc(key, nonce); return c.decrypt(n, ct, ad)
def xseal(key, nonce, ad, pt):
    c, n = xc(key, nonce); return c.encrypt(n, pt, ad)

def ad_of(h, pk):
    out = bytearray()
    def f(name, v):
        v = v.encode() if isinstance(v, str) else v
        out.extend(f"{name}:{len(v)}:".encode()); out.extend(v); out.extend(b"\n")
    f("format", "mcp-key-vault"); f("version", "2"); f("slots", str(len(h["slots"])))
    for s in h["slots"]:
        f("slot.id", s["id"]); f("slot.kind", s["kind"]); f("slot.label", s["label"])
        f("slot.created_at", s["created_at"]); f("slot.recipient", s["recipient"])
        if s["kind"] == "passphrase":
            k = s["kdf"]
            f("slot.kdf.algorithm", "argon2id"); f("slot.kdf.version", "19")
            f("slot.kdf.memory_kib", str(k["memory_kib"])); f("slot.kdf.iterations", str(k["iterations"]))
            f("slot.kdf.parallelism", str(k["parallelism"])); f("slot.kdf.salt", k["salt"])
            f("slot.identity.nonce", s["identity"]["nonce"]); f("slot.identity.ciphertext", s["identity"]["ciphertext"])
            if "binding" in s:
                f("slot.binding", s["binding"])
        f("slot.wrapped_key", s["wrapped_key"])
    f("cipher.algorithm", "xchacha20poly1305"); f("cipher.nonce", h["cipher"]["nonce"])
    if pk is not None:
        f("signature.algorithm", "ed25519"); f("signature.public_key", b64(pk))
    return bytes(out)

def data_key(h, agekey):
    rec = subprocess.check_output(["age-keygen", "-y", agekey]).decode().strip()
    slot = next(s for s in h["slots"] if s["recipient"] == rec)
    return subprocess.run(["age", "-d", "-i", agekey], input=ub64(slot["wrapped_key"]), capture_output=True, check=True).stdout

def decrypt(path, agekey):
    h = json.load(open(path))
    k = data_key(h, agekey)
    pk = ub64(h["signature"]["public_key"]) if "signature" in h else None
    return h, k, pk, xopen(k, ub64(h["cipher"]["nonce"]), ad_of(h, pk), ub64(h["ciphertext"]))

def pub(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

def split_trailer(pt, pk):
    """(body, seed, saves) of a payload ending in 0x02 seed n saves (or 0x01 seed)."""
    if pt[-33] == 1 and pub(pt[-32:]) == pk:
        return pt[:-33], pt[-32:], []
    for n in range(1, 33):
        end = len(pt) - 1 - 32 * n
        if pt[end] == n and pt[end - 33] == 2 and pub(pt[end - 32:end]) == pk:
            return pt[:end - 33], pt[end - 32:end], [pt[end + 1 + 32 * i:end + 33 + 32 * i] for i in range(n)]
    raise SystemExit("trailer not found")

def write(h, path):
    ct = h.pop("ciphertext")
    text = json.dumps(h, indent=2, ensure_ascii=False)
    assert text.endswith("\n}")
    text = text[:-2] + ',\n  "ciphertext": "' + ct + '"\n}\n'
    open(path, "w").write(text)

if sys.argv[1] == "--decrypt":
    h, k, pk, pt = decrypt(sys.argv[2], sys.argv[3]); print(pt.hex()); sys.exit()

strip = "--strip-binding" in sys.argv
args = [a for a in sys.argv[1:] if a != "--strip-binding"]
fv, fkey, vv, out = args[0:4]
extra = [bytes.fromhex(x) for x in args[4:]]
fh, K, pk, pt = decrypt(fv, fkey)
body, seed, saves = split_trailer(pt, pk)
saves = (saves + extra)[-32:]
pt2 = body + bytes([2]) + seed + bytes([len(saves)]) + b"".join(saves) if saves else body + b"\x01" + seed
vh = json.load(open(vv))
vslot = next(s for s in vh["slots"] if s["kind"] == "passphrase")
wrapped_for_victim = next(s for s in fh["slots"] if s["recipient"] == vslot["recipient"])["wrapped_key"]
slot = dict(vslot); slot["wrapped_key"] = wrapped_for_victim
if strip:
    slot.pop("binding", None)
nonce = os.urandom(24)
h = {"format": "mcp-key-vault", "version": 2, "slots": [slot],
     "cipher": {"algorithm": "xchacha20poly1305", "nonce": b64(nonce)},
     "signature": {"algorithm": "ed25519", "public_key": b64(pk), "value": ""}}
ad = ad_of(h, pk)
ct = xseal(K, nonce, ad, pt2)
msg = b"mcp-key-vault/2/signature\n" + ad + hashlib.sha256(ct).digest()
h["signature"]["value"] = b64(Ed25519PrivateKey.from_private_bytes(seed).sign(msg))
h["ciphertext"] = b64(ct)
write(h, out)
print("forged", out, "data key known to forger; signing key = forger's")
