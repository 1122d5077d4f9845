"""The --targets file: one Target per cache, built as the command-line options build one; every
mistake is a usage error naming the file, the entry (index and name) and the key; a password
is never read from the file itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dtr_cache_check.harness import targets_file
from dtr_cache_check.steps import findings

GOOD = {
    "dtr-url": "https://dtr.example.com",
    "dtr-ca": "dtr-ca.pem",
    "dtr-admin-user": "admin",
    "ttl-wait": 30,
    "caches": [
        {"name": "asia", "url": "https://cache.asia.example.com", "ca": "root.pem",
         "logs": "service:dtr-cache_cache", "deploy-dir": "asia", "host": "ssh://ops@asia-1",
         "user": "ci-asia", "password-env": "ASIA_PW"},
        {"name": "europe", "url": "https://cache.eu.example.com:8443", "user": "ci-eu",
         "password-file": "eu.pw"},
    ],
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("dtr-ca.pem", "root.pem"):
        (tmp_path / name).write_text("pem")
    (tmp_path / "asia").mkdir()
    (tmp_path / "asia" / "config.yml").write_text("version: 0.1\n")
    (tmp_path / "eu.pw").write_text("eu-password-long-enough\n")
    monkeypatch.setenv("ASIA_PW", "asia-password-long-enough")
    return tmp_path


def write(folder: Path, document: dict) -> Path:
    path = folder / "targets_file.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def changed(*edits) -> dict:
    """GOOD with ``(entry index or None for the top, key, value or DELETE)`` edits."""
    document = yaml.safe_load(yaml.safe_dump(GOOD))
    for index, key, value in edits:
        where = document if index is None else document["caches"][index]
        if value is DELETE:
            where.pop(key, None)
        else:
            where[key] = value
    return document


DELETE = object()


def test_each_cache_becomes_a_target_with_the_shared_options(folder):
    asia, europe = targets_file.load(write(folder, GOOD))
    assert (asia.cache_name, asia.cache_url, europe.cache_url) == (
        "asia", "https://cache.asia.example.com", "https://cache.eu.example.com:8443")
    assert asia.dtr_url == europe.dtr_url == "https://dtr.example.com"
    assert asia.dtr_ca == europe.dtr_ca == folder / "dtr-ca.pem"   # relative to the file
    assert asia.cache_ca == folder / "root.pem" and europe.cache_ca is None
    assert asia.deploy_dir == folder / "asia"
    assert asia.cache_config == folder / "asia" / "config.yml"     # found in the deploy dir
    assert str(asia.cache_logs) == "service:dtr-cache_cache" and asia.cache_host == "ssh://ops@asia-1"
    assert (asia.dtr_user, europe.dtr_user, asia.admin_user) == ("ci-asia", "ci-eu", "admin")
    assert asia.password("ci-asia") == "asia-password-long-enough"
    assert europe.password("ci-eu") == "eu-password-long-enough"
    assert asia.test_repo == "ci-asia/dtr-cache-check" and asia.ttl_wait == 30.0
    assert not asia._discovery_done  # the network is the session's business


def test_the_command_line_wins_over_the_file_which_wins_over_the_environment(folder):
    fallback = {"ttl_wait": 60.0, "other_user": "bob", "dtr_admin_user": "env-admin"}
    asia, _ = targets_file.load(write(folder, GOOD), overrides={"ttl_wait": 5.0}, fallback=fallback)
    assert asia.ttl_wait == 5.0 and asia.other_user == "bob" and asia.admin_user == "admin"


def test_a_cache_without_a_user_takes_the_shared_user_and_its_password(folder):
    document = changed((None, "dtr-user", "ci"), (1, "user", DELETE), (1, "password-file", DELETE))
    _, europe = targets_file.load(write(folder, document),
                                  fallback={"dtr_password": "shared-pw-123"})
    assert europe.dtr_user == "ci" and europe.password("ci") == "shared-pw-123"


@pytest.mark.parametrize(("edits", "where", "words"), [
    ([(0, "colour", "blue")], "caches[0] (asia), key 'colour'", ["unknown key"]),
    ([(None, "cache-url", "https://x.example")], "top level, key 'cache-url'", ["unknown key"]),
    ([(1, "name", DELETE)], "caches[1]", ["key 'name' is missing"]),
    ([(1, "url", DELETE)], "caches[1] (europe), key 'url'", ["is missing"]),
    ([(1, "name", "asia")], "caches[1] (asia)", ["key 'name'", "given twice"]),
    ([(0, "url", "http://cache.asia.example.com")], "caches[0] (asia), key 'url'",
     ["https://host[:port]"]),
    ([(0, "url", "cache.asia.example.com")], "caches[0] (asia), key 'url'", ["https://"]),
    ([(None, "dtr-url", "ftp://dtr")], "top level, key 'dtr-url'", ["https://"]),
    ([(None, "dtr-url", DELETE)], "key 'dtr-url'", ["is missing"]),
    ([(0, "ca", "nowhere.pem")], "caches[0] (asia), key 'ca'", ["no such file"]),
    ([(None, "dtr-ca", "nowhere.pem")], "top level, key 'dtr-ca'", ["no such file"]),
    ([(0, "logs", "journal:x")], "caches[0] (asia), key 'logs'", ["docker:CONTAINER"]),
    ([(0, "password", "hunter2hunter2")], "caches[0] (asia), key 'password'",
     ["password-env", "password-file"]),
    ([(None, "dtr-password", "hunter2hunter2")], "top level, key 'dtr-password'",
     ["password-env"]),
    ([(0, "password-env", "NOT_SET_ANYWHERE")], "caches[0] (asia), key 'password-env'",
     ["NOT_SET_ANYWHERE is not set"]),
    ([(1, "password-file", "missing.pw")], "caches[1] (europe), key 'password-file'",
     ["no such file"]),
    ([(1, "password-env", "ASIA_PW")], "caches[1] (europe), key 'password-file'",
     ["not both"]),
    ([(1, "user", DELETE)], "caches[1] (europe), key 'password-file'", ["without 'user'"]),
    ([(1, "user", DELETE), (1, "password-file", DELETE)], "caches[1] (europe), key 'user'",
     ["is missing"]),
    ([(0, "password-env", DELETE)], "caches[0] (asia), key 'user'", ["no password for ci-asia"]),
    ([(None, "ttl-wait", "soon")], "top level, key 'ttl-wait'", ["not a number"]),
    ([(None, "caches", [])], "key 'caches'", ["one entry"]),
    ([(None, "caches", ["asia"])], "caches[0]", ["must be a mapping"]),
])
def test_a_mistake_is_a_usage_error_naming_the_file_the_entry_and_the_key(folder, edits, where,
                                                                         words):
    path = write(folder, changed(*edits))
    with pytest.raises(pytest.UsageError) as raised:
        targets_file.load(path)
    message = str(raised.value)
    assert message.startswith(f"--targets {path}: ") and where in message, message
    for word in words:
        assert word in message, message
    assert "hunter2" not in message and "password-long-enough" not in message


def test_a_file_that_is_no_yaml_mapping_names_the_file(folder):
    path = folder / "targets_file.yml"
    for text in ("- just\n- a list\n", "caches: [\n"):
        path.write_text(text)
        with pytest.raises(pytest.UsageError, match=f"--targets {path}: the file"):
            targets_file.load(path)


def test_consequences_stay_within_their_cache():
    """A failure of asia's check is no cause for europe's: outcomes are kept per cache."""
    ledger = findings.LEDGER.set(findings.Ledger())
    try:
        token = findings.CURRENT_CACHE.set("asia")
        findings.record("test_cache_trusts_dtr", findings.Finding("cache->DTR", "no", "yes"))
        with pytest.raises(pytest.fail.Exception, match="consequence of test_cache_trusts_dtr"):
            findings.requires("test_cache_trusts_dtr")
        findings.CURRENT_CACHE.reset(token)
        token = findings.CURRENT_CACHE.set("europe")
        findings.requires("test_cache_trusts_dtr")  # europe's own: not run yet, no consequence
        findings.CURRENT_CACHE.reset(token)
    finally:
        findings.LEDGER.reset(ledger)
