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
LEEWAY = 60.0  # s: how far clocks may disagree (distribution's leeway for its tokens)
MAX_LIFETIME = 3600.0  # s: the longest exp - iat believed (DTR signs tokens for minutes)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(Exception):
    """A token that must not be honoured. ``status`` is the HTTP status to answer with."""

    status = 401
    code = "UNAUTHORIZED"


class UnknownKey(TokenError):
    """Signed with a key id this key set does not hold (refetch the keys, then retry once)."""


class ClockSkew(TokenError):
    """Issued (``iat``) further in the future than the leeway: the signer's clock is ahead."""

    def __init__(self, message: str, skew: float):
        super().__init__(message)
        self.skew = skew


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
    issued_at: float = 0.0  # iat: its distance ahead of this clock is the signer's skew
    # The token's identity: sha256 of its canonical (low-s) spelling, so the two valid
    # spellings of one ECDSA signature, (r, s) and (r, n - s), are one token. Use this, never
    # the token text, wherever a token must be recognised again (replay lists, caches, logs).
    token_id: str = ""


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

    def verify(self, token: str, *, repository: str, digest: str, now: float | None = None,
               leeway: float = LEEWAY, max_lifetime: float = MAX_LIFETIME) -> BlobGrant:
        """Check signature, expiry, issue time, lifetime, audience and the repository and
        digest bindings.

        ``leeway``: how far ``exp`` may be past and ``iat``/``nbf`` ahead of this clock.
        ``iat`` is required, and ``exp - iat`` may be at most ``max_lifetime``: without a
        known issue time a token's lifetime cannot be bounded, and DTR's tokens carry one (a
        token valid for years is a leaked key's best friend, not DTR's way).

        Checked here rather than by ``jwt.decode``: this is the one token shape a cache accepts
        (ES256, a kid, fixed claims) and it is checked on every hit, where jwt.decode's
        generality cost twice the signature check itself. ``cryptography`` checks the
        signature; the unit tests hold this to PyJWT's verdict (signing stays PyJWT's).
        ``now`` replaces the clock for the expiry only.

        Signature malleability: an ECDSA signature (r, s) has a twin (r, n - s) that verifies
        just as well. Neither PyJWT nor ``cryptography`` (and so neither the DTR stand-in nor
        any signer built on them) normalises s, so about half of all honest tokens are high-s:
        refusing them ("enforce low-s") would refuse those tokens. Decision: compare canonical
        forms. Either spelling verifies; r and s must lie in 1..n-1; and both spellings are ONE
        token: ``canonical_token`` maps them to the low-s spelling, and the grant's
        ``token_id`` is the hash of that spelling. The cache never uses a token's text as an
        identity (single flight is keyed by digest, the token is never logged); anything that
        must recognise a token again uses ``token_id``.
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
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
            raise invalid
        s = min(s, _P256_ORDER - s)  # the canonical (low-s) form; it verifies iff its twin does
        der = encode_dss_signature(r, s)
        token_id = _token_id(header_part, claims_part, r, s)
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
        if expires + leeway < (clock if now is None else now):
            raise TokenError("token expired")
        issued = claims.get("iat")
        if not _is_number(issued):
            raise TokenError("token has no iat (issued at): its lifetime cannot be bounded")
        if issued - leeway > clock:
            raise ClockSkew(f"token issued {issued - clock:.0f} s in the future: the signer's "
                            f"clock is ahead by more than the leeway ({leeway:g} s)",
                            issued - clock)
        if expires - issued > max_lifetime:
            raise TokenError(f"token lifetime {expires - issued:.0f} s is above the maximum "
                             f"({max_lifetime:g} s)")
        not_before = claims.get("nbf")
        if not_before is not None and (not _is_number(not_before)
                                       or not_before - leeway > clock):
            raise invalid
        if claims.get("repo") != repository:
            raise TokenMismatch("token is for another repository")
        if claims.get("digest") != digest:
            raise TokenMismatch("token is for another digest")
        return BlobGrant(claims["sub"], repository, digest, float(expires), kid, float(issued),
                         token_id)


# The order n of the P-256 group (FIPS 186-4 D.1.2.3): an ES256 signature's r and s are in 1..n-1.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def canonical_token(token: str) -> str:
    """The one spelling of ``token``: its ES256 signature with s replaced by n - s when s is
    above n/2 (the twin that verifies just as well). Nothing is verified here; a token whose
    signature part cannot be read as r and s comes back unchanged."""
    try:
        header_part, claims_part, signature_part = token.split(".")
        signature = _segment(signature_part)
    except (ValueError, TypeError):
        return token
    if len(signature) != 64:
        return token
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        return token
    return _canonical_spelling(header_part, claims_part, r, min(s, _P256_ORDER - s))


def _canonical_spelling(header_part: str, claims_part: str, r: int, low_s: int) -> str:
    raw = r.to_bytes(32, "big") + low_s.to_bytes(32, "big")
    return f"{header_part}.{claims_part}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def _token_id(header_part: str, claims_part: str, r: int, low_s: int) -> str:
    sha256 = hashes.Hash(hashes.SHA256())
    sha256.update(_canonical_spelling(header_part, claims_part, r, low_s).encode("ascii"))
    return sha256.finalize().hex()


def _segment(text: str) -> bytes:
    """One base64url part of a compact JWS: unpadded, the alphabet only, and canonical (spare
    bits zero), so one token has exactly one spelling of its bytes. (The signature's own twin,
    (r, n - s), is a second spelling that verifies: ``canonical_token`` and
    ``BlobGrant.token_id`` fold it into the first.)"""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != text.encode("ascii"):
        raise ValueError("not canonical base64url")
    return decoded


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
