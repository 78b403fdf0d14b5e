#!/usr/bin/env python3
"""A stand-in OAuth 2.1 authorization server for the tests of `serve`'s resource-server mode:
it publishes metadata and a JWK Set, and mints JWT access tokens on request, good ones and
the forged or malformed ones a resource server must refuse. It also runs the authorization
code flow an MCP client's OAuth support drives: registration, /authorize (auto-approved) with
PKCE and a resource indicator, and /token.

It shares no code with the Rust under test: good tokens are signed by joserfc (the version
pinned in .ci/run, 1.8.0; the script also runs on Python 3.9 with joserfc 1.6.8, the last
release for 3.9). The two attack tokens that a correct library refuses to make (alg `none`,
and HS256 keyed with the RSA public key) are assembled here by hand.

    issuer.py [--path /realms/x] [--grant-scope SCOPE]... [--verbose]

Binds 127.0.0.1 on a port the kernel picks, prints `LISTENING <port>` once on stdout when it
accepts connections, and serves until SIGTERM or until its stdin (when a pipe) reaches EOF, so
that a harness that dies takes the issuer with it. Issuer: `http://127.0.0.1:<port><path>`.

    GET  /.well-known/oauth-authorization-server<path>   metadata (RFC 8414 section 3.1)
    GET  <path>/.well-known/openid-configuration         the same metadata (OIDC Discovery)
    GET  <path>/jwks    {"keys": [...]}: RS256, PS256 (one RSA key), ES256, EdDSA
    POST <path>/mint    {"alg", "claims"?, "kid"?, "header"?, "key"?}
                        -> {"token", "header", "claims"} (header and claims as signed)
    POST <path>/rotate  new keys under new kids; the old ones retire -> {"kids": {alg: kid}}
    GET  <path>/stats   {"jwks_fetches": N, "metadata_fetches": M, "authorizations": A,
                         "tokens": T}
    POST <path>/register   RFC 7591: client metadata (JSON) -> 201, the metadata + client_id
    GET  <path>/authorize  response_type=code, client_id, redirect_uri (one registered for
                           the client), code_challenge + code_challenge_method=S256, resource
                           (RFC 8707), state, scope: approved at once, 302 to the redirect_uri
                           with code, state and iss (RFC 9207); the code is good once, 60 s
    POST <path>/token      grant_type=authorization_code (form): code, client_id,
                           redirect_uri and code_verifier as at /authorize, resource (if sent)
                           the same -> {"access_token", "token_type": "Bearer",
                           "expires_in": 300, "scope"}; the token is an RS256 JWT as /mint
                           signs it, with aud = the resource and scope = the requested scope
                           (all allowed, if none) intersected with the allowed set: the
                           --grant-scope values (default: scopes_supported)

/mint: alg is RS256, PS256, ES256, EdDSA, none or HS256. Claims default to iss, sub
"user-1", iat, nbf, exp (now + 300) and a random jti; the caller's claims replace them and a
null removes one; "header" adds or replaces (null removes) protected header members; "kid"
sets the kid (null: none). "key" picks the signer: "current" (published), "retired" (rotated
out; before any rotation, a key never published), "foreign" (never published, signing under
a published kid: a forged signature). Errors: 4xx {"error": reason}; /register, /authorize
and /token answer 400 {"error": RFC 6749/7591 code, "error_description": reason} (/authorize
never redirects an error: a test wants to see it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.registry import HeaderParameter

MAX_BODY = 64 * 1024
LIFETIME = 300
CODE_LIFETIME = 60
SUPPORTED_SCOPES = ["openid", "tools:list", "tools:call"]
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 section 4.1
SIGNED = ("RS256", "PS256", "ES256", "EdDSA")
ATTACKS = ("none", "HS256")
WHICH_KEYS = ("current", "retired", "foreign")

# Issuers deployed today still publish "EdDSA"; joserfc warns that RFC 9864 deprecates it.
warnings.filterwarnings("ignore", category=SecurityWarning)


def new_keys() -> dict:
    """One private key per alg, each with a fresh random kid. RS256 and PS256 share one RSA
    key pair under two kids, as an issuer with a single RSA key may publish it: a PS256 token
    under the RS256 kid then carries a valid signature, and only the JWK's `alg` refuses it."""

    def params(alg: str) -> dict:
        return {"kid": f"{alg}-{secrets.token_hex(6)}", "alg": alg, "use": "sig"}

    rsa = RSAKey.generate_key(2048).as_dict(private=True)
    return {
        "RS256": RSAKey.import_key(rsa, params("RS256")),
        "PS256": RSAKey.import_key(rsa, params("PS256")),
        "ES256": ECKey.generate_key("P-256", params("ES256")),
        "EdDSA": OKPKey.generate_key("Ed25519", params("EdDSA")),
    }


class Refused(Exception):
    """A request the issuer answers with a 4xx and a one-line reason."""

    def __init__(self, status: int, reason: str, code: str | None = None):
        super().__init__(reason)
        self.status = status
        self.code = code  # an RFC 6749 error code, for the OAuth endpoints


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact_json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def overlay(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied; a change to null removes the member."""
    out = dict(base)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


class Issuer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, path: str, verbose: bool, grant_scope: list | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.base_path = path
        self.verbose = verbose
        self.issuer = f"http://127.0.0.1:{self.server_address[1]}{path}"
        self.grant_scope = grant_scope or SUPPORTED_SCOPES
        self.lock = threading.Lock()
        self.counts = {"jwks_fetches": 0, "metadata_fetches": 0, "authorizations": 0, "tokens": 0}
        self.clients: dict = {}  # client_id -> registered metadata
        self.codes: dict = {}  # code -> what /authorize approved
        self.keys = {"current": new_keys(), "retired": new_keys(), "foreign": new_keys()}

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def stats(self) -> dict:
        with self.lock:
            return dict(self.counts)

    def metadata(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "registration_endpoint": f"{self.issuer}/register",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": True,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(SIGNED),
            "scopes_supported": SUPPORTED_SCOPES,
        }

    def register(self, req: object) -> dict:
        """RFC 7591: a public client (no secret), its metadata kept as sent."""
        if not isinstance(req, dict):
            raise Refused(400, "the body must be a JSON object", "invalid_client_metadata")
        uris = req.get("redirect_uris")
        if not (isinstance(uris, list) and uris and all(isinstance(u, str) for u in uris)):
            raise Refused(400, "redirect_uris must be a list of URIs", "invalid_redirect_uri")
        client = dict(req, client_id=secrets.token_urlsafe(12),
                      client_id_issued_at=int(time.time()), token_endpoint_auth_method="none")
        with self.lock:
            self.clients[client["client_id"]] = client
        return client

    def authorize(self, q: dict) -> str:
        """Approves at once; the redirect URL with the code (errors: Refused, not redirected)."""
        with self.lock:
            client = self.clients.get(q.get("client_id"))
        if client is None:
            raise Refused(400, "unknown client_id", "invalid_client")
        redirect = q.get("redirect_uri")
        if redirect not in client["redirect_uris"]:
            raise Refused(400, "redirect_uri is not registered for the client", "invalid_request")
        if q.get("response_type") != "code":
            raise Refused(400, "response_type must be code", "unsupported_response_type")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            raise Refused(400, "PKCE with code_challenge_method=S256 is required",
                          "invalid_request")
        if not q.get("resource"):
            raise Refused(400, "a resource (RFC 8707) is required", "invalid_target")
        requested = q["scope"].split() if q.get("scope") else list(self.grant_scope)
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "client_id": client["client_id"], "redirect_uri": redirect,
                "challenge": q["code_challenge"], "resource": q["resource"],
                "scope": " ".join(s for s in requested if s in self.grant_scope),
                "expires": time.time() + CODE_LIFETIME,
            }
            self.counts["authorizations"] += 1
        answer = {"code": code, "iss": self.issuer}
        if "state" in q:
            answer["state"] = q["state"]
        return redirect + ("&" if "?" in redirect else "?") + urlencode(answer)

    def token(self, form: dict) -> dict:
        if form.get("grant_type") != "authorization_code":
            raise Refused(400, "only grant_type=authorization_code", "unsupported_grant_type")
        with self.lock:
            grant = self.codes.pop(form.get("code", ""), None)  # good once, whatever follows
        if grant is None or grant["expires"] < time.time():
            raise Refused(400, "unknown, used or expired code", "invalid_grant")
        if form.get("client_id") != grant["client_id"]:
            raise Refused(400, "the code was issued to another client", "invalid_grant")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            raise Refused(400, "redirect_uri differs from the authorization request",
                          "invalid_grant")
        verifier = form.get("code_verifier", "")
        if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
            b64url(hashlib.sha256(verifier.encode("ascii")).digest()), grant["challenge"]
        ):
            raise Refused(400, "code_verifier does not match the code_challenge", "invalid_grant")
        if form.get("resource", grant["resource"]) != grant["resource"]:
            raise Refused(400, "resource differs from the authorization request", "invalid_target")
        minted = self.mint({"alg": "RS256", "claims": {
            "aud": grant["resource"], "scope": grant["scope"], "client_id": grant["client_id"]}})
        self.count("tokens")
        return {"access_token": minted["token"], "token_type": "Bearer",
                "expires_in": LIFETIME, "scope": grant["scope"]}

    def jwks(self) -> dict:
        with self.lock:
            current = self.keys["current"]
        return {"keys": [key.as_dict(private=False) for key in current.values()]}

    def rotate(self) -> dict:
        fresh = new_keys()  # outside the lock: an RSA key takes a while to generate
        with self.lock:
            self.keys["retired"] = self.keys["current"]
            self.keys["current"] = fresh
        return {"kids": {alg: key.kid for alg, key in fresh.items()}}

    def mint(self, req: object) -> dict:
        if not isinstance(req, dict):
            raise Refused(400, "the body must be a JSON object")
        alg, which = req.get("alg"), req.get("key", "current")
        claims, extra = req.get("claims", {}), req.get("header", {})
        if alg not in SIGNED + ATTACKS:
            raise Refused(400, f"alg must be one of {', '.join(SIGNED + ATTACKS)}")
        if which not in WHICH_KEYS:
            raise Refused(400, f"key must be one of {', '.join(WHICH_KEYS)}")
        if not isinstance(claims, dict) or not isinstance(extra, dict):
            raise Refused(400, "claims and header must be JSON objects")
        if "alg" in extra:
            raise Refused(400, "set the alg with the top-level alg, not in header")
        with self.lock:
            current, signer = self.keys["current"], self.keys[which]
        # The attack tokens name the RSA key: HS256 keyed with its public PEM is the classic
        # key confusion, and a kid the JWKS knows takes a verifier past the kid lookup to the
        # check that must refuse. A foreign key signs under the published kid for the same reason.
        key = signer[alg if alg in SIGNED else "RS256"]
        published = current[alg if alg in SIGNED else "RS256"]
        kid = req.get("kid", published.kid if which == "foreign" else key.kid)

        now = int(time.time())
        payload = overlay(
            {"iss": self.issuer, "sub": "user-1", "iat": now, "nbf": now,
             "exp": now + LIFETIME, "jti": secrets.token_urlsafe(16)},
            claims,
        )
        header = overlay(overlay({"typ": "JWT", "alg": alg}, {"kid": kid}), extra)
        body = compact_json(payload)
        if alg == "none":
            token = f"{b64url(compact_json(header))}.{b64url(body)}."
        elif alg == "HS256":
            signing_input = f"{b64url(compact_json(header))}.{b64url(body)}".encode("ascii")
            # The public key as a verifier may hold it: SubjectPublicKeyInfo PEM.
            secret = key.as_pem(private=False)
            mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
            token = f"{signing_input.decode('ascii')}.{b64url(mac)}"
        else:
            # Members the caller set are taken as given (any type, unknown names): the point
            # is to hand the verifier odd headers, not to vet them here.
            loose = {name: HeaderParameter("set by the test", lambda _: None) for name in extra}
            if "kid" in req:
                loose["kid"] = HeaderParameter("set by the test", lambda _: None)
            registry = jws.JWSRegistry(loose, algorithms=[alg], strict_check_header=False)
            try:
                token = jws.serialize_compact(header, body, key, registry=registry)
            except JoseError as error:
                raise Refused(400, f"joserfc refused the header: {error}") from error
        return {"token": token, "header": header, "claims": payload}


class Handler(BaseHTTPRequestHandler):
    server: Issuer
    server_version = "test-issuer"
    timeout = 10  # a stalled client holds its thread this long at most

    def do_GET(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def route(self, method: str) -> None:
        issuer, base = self.server, self.server.base_path
        routes = {
            f"/.well-known/oauth-authorization-server{base}": ("GET", self.metadata),
            f"{base}/.well-known/openid-configuration": ("GET", self.metadata),
            f"{base}/jwks": ("GET", self.jwks),
            f"{base}/stats": ("GET", issuer.stats),
            f"{base}/mint": ("POST", lambda: issuer.mint(self.body())),
            f"{base}/rotate": ("POST", self.rotate),
            f"{base}/register": ("POST", lambda: (201, issuer.register(self.body()))),
            f"{base}/authorize": ("GET", self.authorize),
            f"{base}/token": ("POST", lambda: issuer.token(self.form())),
        }
        try:
            allowed, answer = routes.get(self.path.split("?", 1)[0], (None, None))
            if answer is None:
                raise Refused(404, "no such endpoint")
            if method != allowed:
                raise Refused(405, f"use {allowed}")
            document = answer()
            if isinstance(document, str):  # a redirect
                self.send_response(302)
                self.send_header("Location", document)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, document = document if isinstance(document, tuple) else (200, document)
            self.reply(status, document)
        except Refused as refused:
            if refused.code:
                self.reply(refused.status,
                           {"error": refused.code, "error_description": str(refused)})
            else:
                self.reply(refused.status, {"error": str(refused)})

    def metadata(self) -> dict:
        self.server.count("metadata_fetches")
        return self.server.metadata()

    def jwks(self) -> dict:
        self.server.count("jwks_fetches")
        return self.server.jwks()

    def authorize(self) -> str:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        if any(len(values) > 1 for values in query.values()):
            raise Refused(400, "a parameter is repeated", "invalid_request")
        return self.server.authorize({name: values[0] for name, values in query.items()})

    def form(self) -> dict:
        """An application/x-www-form-urlencoded body (each parameter once)."""
        if self.headers.get_content_type() != "application/x-www-form-urlencoded":
            raise Refused(400, "send the parameters form-encoded", "invalid_request")
        fields = parse_qs(self.raw_body().decode("utf-8", "replace"), keep_blank_values=True)
        if any(len(values) > 1 for values in fields.values()):
            raise Refused(400, "a parameter is repeated", "invalid_request")
        return {name: values[0] for name, values in fields.items()}

    def rotate(self) -> dict:
        self.body()  # read (and bound) whatever was sent, though nothing is expected
        return self.server.rotate()

    def body(self) -> object:
        raw = self.raw_body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise Refused(400, "the body is not JSON") from None

    def raw_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise Refused(411, "send a Content-Length, not a chunked body")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise Refused(400, "Content-Length is not a number") from None
        if not 0 <= length <= MAX_BODY:
            # Discard a moderate excess so that closing with unread bytes (a TCP reset) does
            # not destroy the 413 before the client reads it; a huge one is not worth it.
            left = min(max(length, 0), 16 * MAX_BODY)
            while left > 0:
                chunk = self.rfile.read(min(left, MAX_BODY))
                if not chunk:
                    break
                left -= len(chunk)
            self.close_connection = True
            raise Refused(413, f"the body is limited to {MAX_BODY} bytes")
        return self.rfile.read(length)

    def reply(self, status: int, document: dict) -> None:
        data = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # Request lines only (no bodies, so no tokens), and only when asked for.
        if self.server.verbose:
            sys.stderr.write(f"issuer: {format % args}\n")


def stop_when_stdin_closes(server: Issuer) -> None:
    """Shut down at EOF on stdin when stdin is a pipe or socket; a terminal or /dev/null
    says nothing about the parent's life, so they are left alone."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def watch() -> None:
        while os.read(0, 4096):
            pass
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="", help="issuer path, e.g. /realms/x")
    parser.add_argument("--grant-scope", action="append", metavar="SCOPE",
                        help="a scope /token may grant (repeatable; default: scopes_supported)")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args()
    if args.path and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", args.path):
        parser.error("--path must look like /realms/x (no trailing slash, no query)")
    server = Issuer(args.path, args.verbose, args.grant_scope)
    stop_when_stdin_closes(server)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
