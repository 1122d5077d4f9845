"""The signed blob token: how DTR tells a cache "serve this digest of this repo to this user".

DTR answers a blob GET with a 307 to the user's cache; the Location carries this token in the
query parameter ``TOKEN_PARAM`` (clients drop ``Authorization`` on a cross-host redirect). It is
a short-lived ES256 JWT whose header names the signing key (``kid``) and whose claims bind the
user (``sub``), the repository (``repo``), the digest (``digest``) and the expiry (``exp``). DTR
publishes its public keys as a JWKS at ``JWKS_PATH``; a cache serves its upstream's keys at the
same path, so a chain of caches verifies with DTR's keys. The DTR stand-in signs with this module;
the cache verifies with it. Nothing else defines the format.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dtr_cache_formats.blob_token import ALGORITHM, AUDIENCE
from dtr_cache_formats.blob_token import JWKS_PATH as JWKS_PATH  # re-exported
from dtr_cache_formats.blob_token import TOKEN_PARAM as TOKEN_PARAM  # re-exported

DEFAULT_TTL = 300.0
LEEWAY = 10.0
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(Exception):
    """A token that must not be honoured. ``status`` is the HTTP status to answer with."""

    status = 401
    code = "UNAUTHORIZED"


class UnknownKey(TokenError):
    """Signed with a key id this key set does not hold (refetch the keys, then retry once)."""


class TokenMismatch(TokenError):
    """A valid token for another repository or digest."""

    status = 403
    code = "DENIED"


@dataclass(frozen=True)
class BlobGrant:
    """What a verified token allows."""

    user: str
    repository: str
    digest: str
    expires_at: float
    key_id: str


class SigningKey:
    """An ES256 key pair with a key id; DTR's side."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, key_id: str):
        self.private_key = private_key
        self.key_id = key_id

    @classmethod
    def generate(cls, key_id: str | None = None) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()), key_id or uuid.uuid4().hex[:16])

    @classmethod
    def from_pem(cls, pem: bytes, key_id: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the signing key must be an EC P-256 key")
        return cls(key, key_id)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.key_id, "use": "sig", "alg": ALGORITHM}

    def sign(self, *, user: str, repository: str, digest: str, ttl: float = DEFAULT_TTL,
             now: float | None = None) -> str:
        """A token allowing ``user`` to GET ``digest`` of ``repository`` for ``ttl`` seconds."""
        now = time.time() if now is None else now
        claims = {"sub": user, "repo": repository, "digest": digest, "aud": AUDIENCE,
                  "iat": int(now), "exp": int(now + ttl), "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM,
                          headers={"kid": self.key_id})


def jwks(*keys: SigningKey) -> dict:
    """The JWKS document publishing ``keys``' public halves."""
    return {"keys": [k.public_jwk() for k in keys]}


class KeySet:
    """Public keys from a JWKS document; the cache's side."""

    def __init__(self, document: dict | None = None):
        self.keys: dict[str, jwt.PyJWK] = {}
        if document:
            self.update(document)

    def update(self, document: dict) -> None:
        keys = {}
        for entry in document.get("keys", []):
            if entry.get("kid") and entry.get("kty") == "EC":
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        self.keys = keys

    def verify(self, token: str, *, repository: str, digest: str,
               now: float | None = None) -> BlobGrant:
        """Check signature, expiry, audience and the repository and digest bindings.

        Checked here rather than by ``jwt.decode``: this is the one token shape a cache accepts
        (ES256, a kid, fixed claims) and it is checked on every hit, where jwt.decode's
        generality cost twice the signature check itself. ``cryptography`` checks the
        signature; the unit tests hold this to PyJWT's verdict (signing stays PyJWT's).
        ``now`` replaces the clock for the expiry only.
        """
        try:
            header_part, claims_part, signature_part = token.split(".")
            header = json.loads(_segment(header_part))
            signature = _segment(signature_part)
        except (ValueError, TypeError):  # includes JSON and base64 errors
            raise TokenError("malformed token") from None
        if not isinstance(header, dict):
            raise TokenError("malformed token")
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"token algorithm {str(header.get('alg'))[:10]!r} not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self.keys:
            raise UnknownKey("token signed by an unknown key")
        invalid = TokenError("token signature or claims invalid")
        if len(signature) != 64:  # ES256: r and s, 32 bytes each (RFC 7518 3.4)
            raise invalid
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        try:
            self.keys[kid].key.verify(der, f"{header_part}.{claims_part}".encode("ascii"),
                                      ec.ECDSA(hashes.SHA256()))
            claims = json.loads(_segment(claims_part))
        except (InvalidSignature, ValueError, TypeError):
            raise invalid from None
        if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
            raise invalid
        audience = claims.get("aud")
        if audience != AUDIENCE and not (isinstance(audience, list) and AUDIENCE in audience):
            raise invalid
        clock = time.time()
        expires = claims.get("exp")
        if not _is_number(expires):
            raise invalid
        if expires + LEEWAY < (clock if now is None else now):
            raise TokenError("token expired")
        for claim in ("nbf", "iat"):  # not valid before / issued at: not in the future
            value = claims.get(claim)
            if value is not None and (not _is_number(value) or value - LEEWAY > clock):
                raise invalid
        if claims.get("repo") != repository:
            raise TokenMismatch("token is for another repository")
        if claims.get("digest") != digest:
            raise TokenMismatch("token is for another digest")
        return BlobGrant(claims["sub"], repository, digest, float(expires), kid)


def _segment(text: str) -> bytes:
    """One base64url part of a compact JWS: unpadded, the alphabet only, and canonical (spare
    bits zero), so one token has exactly one spelling."""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != text.encode("ascii"):
        raise ValueError("not canonical base64url")
    return decoded


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
