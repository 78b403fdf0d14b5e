"""A stub age plugin (`age-plugin-stub`) for tests: speaks the age plugin protocol
(recipient-v1 and identity-v1 state machines, https://c2sp.org/age-plugin) with a
deliberately worthless "wrap" (the file key XORed with a fixed pad). It protects nothing;
it exists so that the plugin path of mcp-key-manager runs against a real subprocess.

    python3 age_plugin_stub.py --recipient   prints the stub's recipient (age1stub1...)
    python3 age_plugin_stub.py --identity    prints its identity (AGE-PLUGIN-STUB-1...)
    python3 age_plugin_stub.py --age-plugin=recipient-v1 | identity-v1   (run by age)

Every run appends one line to $STUB_PLUGIN_LOG (when set) naming the phase, so a test can
count how often the plugin was started.
"""

import base64
import os
import sys

PAD = bytes(range(0x40, 0x50))
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((b >> i) & 1) else 0
    return chk


def bech32(hrp, data):
    acc, bits, out = 0, 0, []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    values = [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp] + out
    pm = _polymod(values + [0] * 6) ^ 1
    check = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in out + check)


RECIPIENT = bech32("age1stub", b"stub-recipient")
IDENTITY = bech32("age-plugin-stub-", b"stub-identity").upper()


def b64(data):
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text):
    return base64.b64decode(text + "=" * (-len(text) % 4))


def read_stanza(inp):
    """(args, body bytes) of the next stanza, or None at end of input."""
    line = inp.readline()
    if not line:
        return None
    line = line.rstrip("\n")
    if not line.startswith("-> "):
        raise SystemExit(f"stub: unexpected line {line!r}")
    args = line[3:].split(" ")
    body = ""
    while True:
        chunk = inp.readline().rstrip("\n")
        body += chunk
        if len(chunk) < 64:
            break
    return args, unb64(body)


def write_stanza(out, args, body=b""):
    enc = b64(body)
    lines = [enc[i : i + 64] for i in range(0, len(enc), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")
    out.write("-> " + " ".join(args) + "\n" + "\n".join(lines) + "\n")
    out.flush()


def log(what):
    path = os.environ.get("STUB_PLUGIN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(what + "\n")


def recipient_v1(inp, out):
    recipients, keys = [], []
    while True:
        st = read_stanza(inp)
        if st is None or st[0][0] == "done":
            break
        args, body = st
        if args[0] == "add-recipient":
            recipients.append(args[1])
        elif args[0] == "wrap-file-key":
            keys.append(body)
        # anything else (grease, extension-labels, add-identity) is ignored
    for r in recipients:
        if r != RECIPIENT:
            write_stanza(out, ["error", "recipient", str(recipients.index(r))], b"unknown recipient")
            read_stanza(inp)
            write_stanza(out, ["done"])
            return
    for i, key in enumerate(keys):
        wrapped = bytes(a ^ b for a, b in zip(key, PAD))
        write_stanza(out, ["recipient-stanza", str(i), "stub"], wrapped)
        read_stanza(inp)  # -> ok
    write_stanza(out, ["done"])


def identity_v1(inp, out):
    identities, stanzas = [], []
    while True:
        st = read_stanza(inp)
        if st is None or st[0][0] == "done":
            break
        args, body = st
        if args[0] == "add-identity":
            identities.append(args[1])
        elif args[0] == "recipient-stanza":
            stanzas.append((args, body))
    if IDENTITY in identities:
        for args, body in stanzas:
            if args[2] == "stub" and len(body) == 16:
                key = bytes(a ^ b for a, b in zip(body, PAD))
                write_stanza(out, ["file-key", args[1]], key)
                read_stanza(inp)  # -> ok
                break
    write_stanza(out, ["done"])


def main():
    arg = sys.argv[1] if len(sys.argv) > 1 else ""
    if arg == "--recipient":
        print(RECIPIENT)
    elif arg == "--identity":
        print(IDENTITY)
    elif arg == "--age-plugin=recipient-v1":
        log("recipient-v1")
        recipient_v1(sys.stdin, sys.stdout)
    elif arg == "--age-plugin=identity-v1":
        log("identity-v1")
        identity_v1(sys.stdin, sys.stdout)
    else:
        raise SystemExit("usage: age_plugin_stub.py --recipient | --identity | --age-plugin=...")


if __name__ == "__main__":
    main()
