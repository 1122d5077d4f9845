"""The balancer's configs say what each variant is (tests/docker/test_balancer.py runs them):
passthrough relays TCP and holds no key, the faults terminate TLS, strip-query drops the query;
backends are host:port, or a service found through Docker's DNS; nothing else gets in."""

from __future__ import annotations

import pytest

from dtr_cache_check.reference import balancer


def lines(config: balancer.Config) -> list[str]:
    return [line.strip() for line in config.text.splitlines()]


def test_passthrough_relays_tcp_round_robin_with_tls_health_checks() -> None:
    config = balancer.render("passthrough", ["10.0.0.2:443", "10.0.0.3:443"])
    got = lines(config)
    assert "bind :443" in got  # no ssl, no crt: the replicas' own TLS reaches the client
    assert got.count("mode tcp") == 2
    assert "balance roundrobin" in got
    assert "option httpchk GET /health" in got
    assert "server replica1 10.0.0.2:443 check check-ssl verify none" in got
    assert "server replica2 10.0.0.3:443 check check-ssl verify none" in got
    assert "crt" not in config.text and "http-request" not in config.text
    assert "resolvers docker" not in config.text  # addresses need no DNS
    assert not config.needs_pem


def test_named_backends_and_a_service_are_resolved_by_docker_dns_at_run_time() -> None:
    named = lines(balancer.render("passthrough", ["cache-1:443", "10.0.0.3:443"]))
    assert ("server replica1 cache-1:443 check check-ssl verify none resolvers docker "
            "init-addr none resolve-prefer ipv4") in named
    assert "server replica2 10.0.0.3:443 check check-ssl verify none" in named
    assert "nameserver docker 127.0.0.11:53" in named
    swarm = lines(balancer.render("passthrough", service="dtr-cache_cache:443", slots=3))
    assert ("server-template replica 1-3 dtr-cache_cache:443 check check-ssl verify none "
            "resolvers docker init-addr none resolve-prefer ipv4") in swarm


def test_the_faults_terminate_tls_and_strip_query_drops_the_query() -> None:
    terminating = balancer.render("terminating", ["10.0.0.2:443"])
    assert terminating.needs_pem
    assert f"bind :443 ssl crt {balancer.PEM_PATH} alpn http/1.1" in lines(terminating)
    assert "server replica1 10.0.0.2:443 ssl verify none check" in lines(terminating)
    assert "set-uri" not in terminating.text
    strip = balancer.render("strip-query", ["10.0.0.2:443"], listen_port=8443)
    assert "http-request set-uri %[path]" in lines(strip)
    assert f"bind :8443 ssl crt {balancer.PEM_PATH} alpn http/1.1" in lines(strip)


def test_without_a_health_path_the_check_is_a_tcp_connect() -> None:
    got = lines(balancer.render("passthrough", ["10.0.0.2:443"], health_path=None))
    assert "server replica1 10.0.0.2:443 check" in got
    assert not any(line.startswith("option httpchk") for line in got)


@pytest.mark.parametrize("backend", ["cache", "cache:0", "cache:70000", "a b:443",
                                     "cache:443\n    server evil 1.2.3.4:443", "cache:443\n", ""])
def test_a_backend_that_is_not_host_port_is_refused(backend: str) -> None:
    with pytest.raises(ValueError):
        balancer.render("passthrough", [backend])


def test_refused_arguments() -> None:
    with pytest.raises(ValueError, match="unknown balancer variant"):
        balancer.render("tls-offload", ["10.0.0.2:443"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad listen port"):
        balancer.render("passthrough", ["10.0.0.2:443"], listen_port=0)
    with pytest.raises(ValueError, match="slot count"):
        balancer.render("passthrough", service="cache:443", slots=0)
    with pytest.raises(ValueError, match="no backends"):
        balancer.render("passthrough", [])
    with pytest.raises(ValueError, match="not both"):
        balancer.render("passthrough", ["10.0.0.2:443"], service="cache:443")
    with pytest.raises(ValueError, match="health check path"):
        balancer.render("passthrough", ["10.0.0.2:443"], health_path="/health\nserver x")
    with pytest.raises(ValueError, match="needs a PEM"):
        balancer._files(balancer.render("terminating", ["10.0.0.2:443"]), None)
    with pytest.raises(ValueError, match="no certificate or key"):
        balancer._files(balancer.render("passthrough", ["10.0.0.2:443"]), b"KEY")
