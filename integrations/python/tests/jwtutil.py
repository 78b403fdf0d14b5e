"""An authorization server in miniature: locally generated keys (RSA, EC P-256, Ed25519),
access tokens minted with joserfc, and the issuer's metadata and JWK Set served over
http.server on 127.0.0.1 (discovery, rotation, and counting what was fetched)."""

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time
import warnings

from sdkutil import need

RESOURCE = "https://mcp.example.test/mcp"
METADATA_URL = "https://mcp.example.test/.well-known/oauth-protected-resource/mcp"
ALGS = {"RS256": "rsa1", "PS256": "rsa1", "ES256": "ec1", "EdDSA": "ed1"}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """The issuer's signing keys by kid: rsa1 (RSA 2048), ec1 (P-256), ed1 (Ed25519), and
    whatever `add` makes."""

    def __init__(self):
        need("joserfc")
        self.private = {}
        self.add("rsa1", "RSA", 2048)
        self.add("ec1", "EC", "P-256")
        self.add("ed1", "OKP", "Ed25519")

    def add(self, kid, kty, size_or_crv):
        from joserfc.jwk import JWKRegistry

        self.private[kid] = JWKRegistry.generate_key(kty, size_or_crv, {"kid": kid},
                                                     private=True)
        return self.private[kid]

    def jwk(self, kid, **extra):
        return dict(self.private[kid].as_dict(private=False), **extra)

    def jwks(self, *kids, extra=None):
        """The public JWK Set of `kids` (all by default); `extra={"rsa1": {...}}` adds members
        to a key."""
        extra = extra or {}
        return {"keys": [self.jwk(k, **extra.get(k, {})) for k in kids or self.private]}

    def mint(self, issuer, alg="RS256", kid=None, header=None, sign_with=None, **claims):
        """A signed access token for RESOURCE: `claims` override the defaults (None removes
        one); `kid=False` leaves the kid out of the header; `sign_with` names the key that
        signs (default: the kid's, else the algorithm's)."""
        from joserfc import jwt
        from joserfc.errors import SecurityWarning

        kid = ALGS[alg] if kid is None else kid
        now = int(time.time())
        body = {"iss": issuer, "sub": "user-42", "aud": RESOURCE, "iat": now, "exp": now + 300,
                "scope": "tools:call", "client_id": "client-7"}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": alg}
        if kid is not False:
            head["kid"] = kid
        head.update(header or {})
        if sign_with is None:
            sign_with = kid if kid in self.private else ALGS[alg]
        if "crit" in head:  # joserfc refuses to sign what it would not understand
            signing_input = "%s.%s" % (b64(json.dumps(head).encode()),
                                       b64(json.dumps(body).encode()))
            return signing_input + "." + b64(b"\0" * 256)
        with warnings.catch_warnings():  # joserfc warns that RFC 9864 deprecates "EdDSA"
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(head, body, self.private[sign_with], algorithms=[alg])

    def public_pem(self, kid="rsa1"):
        from cryptography.hazmat.primitives import serialization

        return self.private[kid].public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def unsigned(header, claims, signature=b""):
    """A compact JWS built by hand (for `alg: none` and forgeries)."""
    return "%s.%s.%s" % (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()),
                         b64(signature))


def hs256_with(secret, header, claims):
    """A token MACed with HS256 under `secret` (e.g. the issuer's RSA public key as PEM: the
    algorithm-confusion attack)."""
    signing_input = "%s.%s" % (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


class IssuerServer:
    """An authorization server's metadata and JWK Set on 127.0.0.1. `documents` maps a path to
    the JSON it answers (anything else is 404); `hits` counts requests per path."""

    def __init__(self, path="/realms/mcp"):
        self.documents = {}
        self.hits = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    doc = outer.documents.get(self.path)
                if doc is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.issuer = self.base + path
        self.path = path

    def publish(self, jwks, where="rfc8414"):
        """Metadata at the RFC 8414 location (or, with where="oidc", only at the OpenID one)
        naming `/jwks` as `jwks_uri`, and the JWK Set there."""
        meta = {"issuer": self.issuer, "jwks_uri": self.base + "/jwks"}
        with self.lock:
            self.documents.clear()
            if where == "rfc8414":
                self.documents["/.well-known/oauth-authorization-server" + self.path] = meta
            else:
                self.documents[self.path + "/.well-known/openid-configuration"] = meta
            self.documents["/jwks"] = jwks

    def rotate(self, jwks):
        with self.lock:
            self.documents["/jwks"] = jwks

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)

    @contextlib.contextmanager
    def running(self):
        thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join(10)
