"""The signed-redirect protocol the project DECIDED (protocol.md): where a redirect carries its
token and where a signer publishes its keys. A real DTR's format is unknown; the harness only
uses these names to recognise the stand-in's redirects."""

TOKEN_PARAM = "dtr_cache_token"
JWKS_PATH = "/.well-known/dtr-content-cache/jwks.json"
AUDIENCE = "dtr-content-cache"
ALGORITHM = "ES256"
