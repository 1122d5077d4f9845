"""Documented formats that both the judge (checks, harness) and the judged (the reference cache,
the DTR stand-in) need: Go durations, distribution's API constants and name grammar, the TLS
failure classes, the blob-token protocol constants, the key-strength rule.

Nothing here decides a verdict; it only spells what the documents spell, so that renaming a
class or a header on one side cannot silently switch a detection off on the other. Each module
is tested against the document it follows (tests/unit/test_formats.py).
"""
