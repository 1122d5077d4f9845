"""config.yml validation: the seed's file loads; every bad input names its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cache_under_test.config import ConfigError, load_config, validate
from cache_under_test.durations import parse_duration
from dtr_cache_check.pki import CertificateAuthority
from dtr_cache_check.reference.seed_templates import cache_config, write_yaml

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "seed"
OPTS = "middleware.registry[downstream].options"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    root = CertificateAuthority.create()
    leaf = root.intermediate().issue_server(["cache.example.com"])
    leaf.write(d / "cache.cert.pem", d / "cache.key.pem")
    root.write_cert(d / "dtr.cert.pem")
    leaf.write(d / "enc.cert.pem", d / "enc.key.pem", key_password=b"pw")
    leaf.with_other_key().write(d / "other.cert.pem", d / "other.key.pem")
    root.issue_server(["cache.example.com"], key_type="rsa", key_size=1024).write(
        d / "weak.cert.pem", d / "weak.key.pem")
    (d / "not-pem.pem").write_text("hello")
    return d


def good(pki: Path) -> dict:
    return cache_config(upstreams=["https://dtr.example.com:443"], cas=[str(pki / "dtr.cert.pem")],
                        certificate=str(pki / "cache.cert.pem"), key=str(pki / "cache.key.pem"),
                        rootdirectory="/var/lib/registry")


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw)
    return info.value.problems


def test_the_seed_config_loads_unchanged_apart_from_its_placeholders(pki, tmp_path):
    """The seed guide's config.yml text, with only <cache-url>/<dtr-url> filled in."""
    text = f"""version: 0.1
log:
  level: info
storage:
  delete:
    enabled: true
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: 0.0.0.0:443
  secret: generate-random-secret
  host: https://cache.example.com
  tls:
    certificate: {pki}/cache.cert.pem
    key: {pki}/cache.key.pem
middleware:
  registry:
      - name: downstream
        options:
          blobttl: 24h
          upstreams:
            - https://dtr.example.com:443
          cas:
            - {pki}/dtr.cert.pem
"""
    path = tmp_path / "config.yml"
    path.write_text(text)
    config = load_config(path, environ={})
    assert config.upstreams == ["https://dtr.example.com:443"]
    assert config.blobttl == 86400
    assert config.delete_enabled and config.addr_port == 443
    assert config.tls and config.tls.certificate.name == "cache.cert.pem"


def test_legacy_originhost_form(pki):
    raw = good(pki)
    raw["middleware"]["registry"][0]["options"]["upstreams"] = [
        {"originhost": "https://dtr.example.com", "upstreamhosts": ["https://c1.example.com:8443"]}]
    config = validate(raw)
    assert config.upstreams == ["https://c1.example.com:8443"]
    assert config.origin == "https://dtr.example.com"
    raw["middleware"]["registry"][0]["options"]["upstreams"] = [
        {"originhost": "https://dtr.example.com"}]
    assert validate(raw).upstreams == ["https://dtr.example.com"]


def test_env_overrides_follow_registry_naming(pki, tmp_path):
    path = write_yaml(tmp_path / "c.yml", good(pki))
    config = load_config(path, environ={
        "REGISTRY_HTTP_ADDR": "127.0.0.1:5443",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/srv/cache",
        "REGISTRY_LOG_LEVEL": "debug",
        "UNRELATED": "x",
    })
    assert (config.addr_host, config.addr_port) == ("127.0.0.1", 5443)
    assert str(config.root) == "/srv/cache"
    assert config.log_level == "DEBUG"
    assert set(config.overrides) == {"http.addr", "storage.filesystem.rootdirectory", "log.level"}


def test_env_override_can_break_a_good_config_and_is_named(pki, tmp_path):
    path = write_yaml(tmp_path / "c.yml", good(pki))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"REGISTRY_STORAGE_DELETE_ENABLED": "false"})
    assert any("storage.delete.enabled is not true" in p for p in info.value.problems)


@pytest.mark.parametrize(("mutate", "key", "words"), [
    (lambda o: o.pop("upstreams"), f"{OPTS}.upstreams", "missing or empty"),
    (lambda o: o.update(upstreams=[]), f"{OPTS}.upstreams", "missing or empty"),
    (lambda o: o.update(upstreams=["dtr.example.com"]), f"{OPTS}.upstreams[0]", "scheme://host"),
    (lambda o: o.update(upstreams=["ftp://dtr"]), f"{OPTS}.upstreams[0]", "scheme://host"),
    (lambda o: o.update(upstreams=["https://dtr:99999"]), f"{OPTS}.upstreams[0]", "scheme://"),
    (lambda o: o.update(upstreams=["https://dtr/v2/"]), f"{OPTS}.upstreams[0]", "scheme://host"),
    (lambda o: o.update(blobttl="soon"), f"{OPTS}.blobttl", "not a duration"),
    (lambda o: o.update(blobttl="-5m"), f"{OPTS}.blobttl", "positive"),
    (lambda o: o.update(blobttl="0s"), f"{OPTS}.blobttl", "positive"),
    (lambda o: o.update(cas=["/nonexistent/ca.pem"]), f"{OPTS}.cas[0]", "cannot read"),
    (lambda o: o.update(cas=["relative.pem"]), f"{OPTS}.cas[0]", "absolute path"),
    (lambda o: o.update(ttl="24h"), f"{OPTS}.ttl", "unknown option"),
])
def test_downstream_option_errors_name_the_key(pki, mutate, key, words):
    raw = good(pki)
    mutate(raw["middleware"]["registry"][0]["options"])
    found = problems(raw)
    assert any(p.startswith(f"{key}:") and words in p for p in found), found


def test_cas_file_that_is_not_pem(pki):
    raw = good(pki)
    raw["middleware"]["registry"][0]["options"]["cas"] = [str(pki / "not-pem.pem")]
    assert any("holds no PEM certificate" in p for p in problems(raw))


def test_blobttl_requires_delete_enabled(pki):
    raw = good(pki)
    raw["storage"]["delete"]["enabled"] = False
    found = problems(raw)
    assert any(p.startswith(f"{OPTS}.blobttl:") and "storage.delete.enabled" in p for p in found)


def test_blobttl_without_unit_is_nanoseconds_with_a_loud_warning(pki):
    raw = good(pki)
    raw["middleware"]["registry"][0]["options"]["blobttl"] = 86400
    config = validate(raw)
    assert config.blobttl == pytest.approx(86400e-9)
    warning = next(w for w in config.warnings if "blobttl" in w)
    assert "NANOSECONDS" in warning and "86.4 µs" in warning and "24h" in warning


@pytest.mark.parametrize(("tls", "key", "words"), [
    ({"key": "cache.key.pem"}, "http.tls.certificate", "missing"),
    ({"certificate": "cache.cert.pem"}, "http.tls.key", "missing"),
    ({"certificate": "nope.pem", "key": "cache.key.pem"}, "http.tls.certificate", "cannot read"),
    ({"certificate": "cache.cert.pem", "key": "enc.key.pem"}, "http.tls.key", "encrypted"),
    ({"certificate": "cache.cert.pem", "key": "other.key.pem"}, "http.tls.key", "does not match"),
    ({"certificate": "not-pem.pem", "key": "cache.key.pem"}, "http.tls.certificate", "no PEM"),
    ({"certificate": "weak.cert.pem", "key": "weak.key.pem"}, "http.tls.key", "weak 1024-bit"),
])
def test_tls_errors_name_the_key(pki, tls, key, words):
    raw = good(pki)
    raw["http"]["tls"] = {k: str(pki / v) for k, v in tls.items()}
    found = problems(raw)
    assert any(p.startswith(f"{key}:") and words in p for p in found), found


def test_all_problems_reported_at_once(pki):
    raw = copy.deepcopy(good(pki))
    raw["http"]["addr"] = "nowhere"
    raw["middleware"]["registry"][0]["options"].update(upstreams=[], bogus=1)
    found = problems(raw)
    assert len(found) >= 3
    assert {p.split(":")[0] for p in found} >= {"http.addr", f"{OPTS}.upstreams", f"{OPTS}.bogus"}


def test_missing_downstream_middleware(pki):
    raw = good(pki)
    raw["middleware"] = {"registry": [{"name": "other"}]}
    assert any("no entry named downstream" in p for p in problems(raw))


def test_unsupported_storage_driver(pki):
    raw = good(pki)
    raw["storage"]["s3"] = {"bucket": "b"}
    assert any(p.startswith("storage.s3:") for p in problems(raw))


@pytest.mark.parametrize(("text", "seconds", "unit"), [
    ("24h", 86400, True), ("1h30m", 5400, True), ("500ms", 0.5, True), ("1.5h", 5400, True),
    ("2h45m10s", 9910, True), ("10us", 1e-5, True), (86400, 86400e-9, False),
])
def test_durations(text, seconds, unit):
    value, had_unit = parse_duration(text)
    assert value == pytest.approx(seconds) and had_unit is unit


def test_the_real_seed_file_parses_as_yaml_with_placeholders_named():
    """The guide's config.yml, HTML-unescaped, still has placeholders: they are reported."""
    seeds = list(SEED.glob("*.txt"))
    if not seeds:
        pytest.skip("shared/seed is not beside this checkout")
    text = seeds[0].read_text()
    block = text.split("<div id=\"tab2\"", 1)[1].split("<code>", 1)[1].split("</code>", 1)[0]
    block = block.replace("&lt;", "<").replace("&gt;", ">")
    import yaml

    raw = yaml.safe_load(block)
    found = problems(raw)
    assert any("upstreams[0]" in p and "<dtr-url>" in p for p in found), found
    assert any(p.startswith("http.tls.certificate:") for p in found)


def test_the_debug_address_is_distributions_key(pki, tmp_path):
    raw = good(pki)
    raw["http"]["debug"] = {"addr": "localhost:5001"}
    config = validate(raw)
    assert (config.debug.host, config.debug.port, config.debug.metrics_path) == \
        ("localhost", 5001, "/metrics")
    assert validate(good(pki)).debug is None  # none unless configured
    path = write_yaml(tmp_path / "c.yml", good(pki))
    config = load_config(path, environ={"REGISTRY_HTTP_DEBUG_ADDR": "127.0.0.1:5001"})
    assert (config.debug.host, config.debug.port) == ("127.0.0.1", 5001)
    raw["http"]["debug"]["prometheus"] = {"enabled": True, "path": "/prom"}
    assert validate(raw).debug.metrics_path == "/prom"


@pytest.mark.parametrize(("debug", "words"), [
    ({"addr": "localhost"}, "host:port"),
    ({"addr": "0.0.0.0:443"}, "the cache's own http.addr"),
    ({"addr": ":5001", "prometheus": {"enabled": "yes"}}, "true or false"),
    ({"addr": ":5001", "prometheus": {"path": "metrics"}}, "a path"),
    ("localhost:5001", "must be a mapping"),
])
def test_debug_address_errors_name_the_key(pki, debug, words):
    raw = good(pki)
    raw["http"]["debug"] = debug
    found = problems(raw)
    assert any(p.startswith("http.debug") and words in p for p in found), found


def test_public_detail_is_an_explicit_opt_in(pki, tmp_path):
    path = write_yaml(tmp_path / "c.yml", good(pki))
    assert not load_config(path, environ={}).public_debug
    opted = load_config(path, environ={"DTRCACHE_PUBLIC_DEBUG": "1"})
    assert opted.public_debug
    assert any("DTRCACHE_PUBLIC_DEBUG" in w for w in opted.warnings)
    both = load_config(path, environ={"DTRCACHE_PUBLIC_DEBUG": "1",
                                      "REGISTRY_HTTP_DEBUG_ADDR": "localhost:5001"})
    assert not both.public_debug  # the debug address wins
    assert any("ignored" in w for w in both.warnings)


def test_timeouts_and_connection_limit_from_the_environment(pki, tmp_path):
    path = write_yaml(tmp_path / "c.yml", good(pki))
    defaults = load_config(path, environ={}).limits
    assert (defaults.handshake_timeout, defaults.header_timeout, defaults.max_connections,
            defaults.keepalive_timeout) == (10.0, 30.0, 512, 75.0)
    set_ = load_config(path, environ={"DTRCACHE_TLS_HANDSHAKE_TIMEOUT": "2.5",
                                      "DTRCACHE_HEADER_TIMEOUT": "500ms",
                                      "DTRCACHE_MAX_CONNECTIONS": "100",
                                      "DTRCACHE_KEEPALIVE_TIMEOUT": "1m"}).limits
    assert (set_.handshake_timeout, set_.header_timeout, set_.max_connections,
            set_.keepalive_timeout) == (2.5, 0.5, 100, 60.0)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"DTRCACHE_HEADER_TIMEOUT": "soon",
                                   "DTRCACHE_TLS_HANDSHAKE_TIMEOUT": "0",
                                   "DTRCACHE_MAX_CONNECTIONS": "-1"})
    assert sorted(p.split(":")[0] for p in info.value.problems) == [
        "DTRCACHE_HEADER_TIMEOUT", "DTRCACHE_MAX_CONNECTIONS", "DTRCACHE_TLS_HANDSHAKE_TIMEOUT"]


def test_the_guards_knobs_from_the_environment(pki, tmp_path):
    path = write_yaml(tmp_path / "c.yml", good(pki))
    defaults = load_config(path, environ={}).limits
    assert (defaults.max_fills, defaults.clock_leeway, defaults.max_token_lifetime,
            defaults.keys_refresh, defaults.max_client_connections) == (64, 60.0, 3600.0,
                                                                         300.0, 0)
    set_ = load_config(path, environ={"DTRCACHE_MAX_FILLS": "8", "DTRCACHE_CLOCK_LEEWAY": "0",
                                      "DTRCACHE_MAX_TOKEN_LIFETIME": "24h",
                                      "DTRCACHE_KEYS_REFRESH": "90s",
                                      "DTRCACHE_MAX_CLIENT_CONNECTIONS": "32"}).limits
    assert (set_.max_fills, set_.clock_leeway, set_.max_token_lifetime, set_.keys_refresh,
            set_.max_client_connections) == (8, 0.0, 86400.0, 90.0, 32)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"DTRCACHE_MAX_FILLS": "0", "DTRCACHE_CLOCK_LEEWAY": "-1s",
                                   "DTRCACHE_MAX_TOKEN_LIFETIME": "0",
                                   "DTRCACHE_KEYS_REFRESH": "often",
                                   "DTRCACHE_MAX_CLIENT_CONNECTIONS": "many"})
    assert sorted(p.split(":")[0] for p in info.value.problems) == [
        "DTRCACHE_CLOCK_LEEWAY", "DTRCACHE_KEYS_REFRESH", "DTRCACHE_MAX_CLIENT_CONNECTIONS",
        "DTRCACHE_MAX_FILLS", "DTRCACHE_MAX_TOKEN_LIFETIME"]


def test_the_profile_is_reference_unless_distribution_is_asked_for(pki, tmp_path):
    path = write_yaml(tmp_path / "config.yml", good(pki))
    assert load_config(path, environ={}).output.profile == "reference"
    dist = load_config(path, environ={"DTRCACHE_PROFILE": "distribution",
                                      "REGISTRY_LOG_FORMATTER": "json"}).output
    assert (dist.profile, dist.formatter, dist.access_log) == ("distribution", "json", True)
    with pytest.raises(ConfigError, match="DTRCACHE_PROFILE: 'distro' is not one of"):
        load_config(path, environ={"DTRCACHE_PROFILE": "distro"})


def test_a_formatter_distribution_would_refuse_stops_the_distribution_profile(pki, tmp_path):
    raw = good(pki)
    raw["log"]["formatter"] = "xml"
    path = write_yaml(tmp_path / "config.yml", raw)
    with pytest.raises(ConfigError, match=r"log\.formatter: unsupported logging formatter"):
        load_config(path, environ={"DTRCACHE_PROFILE": "distribution"})
    assert load_config(path, environ={}).output.profile == "reference"  # its events ignore it
