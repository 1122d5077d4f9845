"""The one key-strength rule, for certificate files and live servers alike: RSA below 2048
bits, EC below 256 bits and every DSA key are weak (NIST SP 800-131A; browsers and Go's TLS
refuse less); Ed25519 and Ed448 are strong."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

RSA_MIN_BITS = 2048
EC_MIN_BITS = 256


def key_is_strong(key: Any) -> bool:
    """True for RSA >= 2048, EC >= 256 bits, Ed25519/Ed448 (public or private halves)."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return key.key_size >= RSA_MIN_BITS
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return key.curve.key_size >= EC_MIN_BITS
    if isinstance(key, dsa.DSAPublicKey | dsa.DSAPrivateKey):
        return False
    return isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey
                      | ed448.Ed448PublicKey | ed448.Ed448PrivateKey)
