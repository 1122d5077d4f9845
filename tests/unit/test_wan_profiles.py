"""The WAN profiles and how a deployment records them: figures, the relay's and netem's
arguments, the far side, the cache profile, and how ``down --all`` tells live from orphaned."""

from __future__ import annotations

import json

import pytest

from dtr_cache_check.reference import wan, wanrelay
from dtr_cache_check.reference.stack import names, orphans
from dtr_cache_check.reference.stack.record import PROFILE_VARIABLE, Deployment


def test_the_profiles_carry_the_documented_figures():
    figures = {p.name: (p.rtt_ms, p.rate_mbit, p.loss) for p in wan.PROFILES.values()}
    assert figures == {"lan": (0, None, 0.0), "inter-region": (80, 200, 0.0),
                       "transpacific": (180, 50, 0.001), "satellite": (600, 10, 0.0)}
    assert not wan.PROFILES["lan"].shaped
    assert wan.PROFILES["transpacific"].one_way == pytest.approx(0.09)
    assert wan.PROFILES["satellite"].rate_bytes == pytest.approx(1.25e6)


def test_an_unknown_profile_names_the_known_ones():
    with pytest.raises(ValueError, match="lan, inter-region, transpacific, satellite"):
        wan.profile("moon")


def test_the_relay_reads_the_arguments_a_profile_writes():
    args = wanrelay.parser().parse_args(
        ["--listen", "0.0.0.0:443", "--target", "far-dtr:443",
         *wan.PROFILES["transpacific"].relay_args()])
    assert (args.one_way, args.connect_delay, args.rate, args.rate_up, args.loss) == (
        pytest.approx(0.09), pytest.approx(0.18), 6.25e6, 6.25e6, 0.001)
    assert args.target == ("far-dtr", 443)


def test_netem_gets_half_the_round_trip_each_way():
    assert wan.PROFILES["transpacific"].netem_args() == [
        "delay", "90ms", "rate", "50mbit", "loss", "0.1%"]


@pytest.mark.parametrize(("profile", "side", "topology", "far"), [
    ("lan", "dtr", "single", []),
    ("transpacific", "dtr", "chain", ["dtr"]),
    ("satellite", "cache", "regions", ["cache"]),
])
def test_the_far_roles(tmp_path, profile, side, topology, far):
    dep = Deployment(base=tmp_path, mode="bridge", topology=topology, wan=profile,
                     wan_far=side)
    assert dep.far_roles == far


def test_an_unknown_far_side_is_refused(tmp_path):
    dep = Deployment(base=tmp_path, mode="bridge", wan="satellite", wan_far="moon")
    with pytest.raises(ValueError, match="dtr, cache"):
        _ = dep.far_roles


def test_the_record_keeps_the_wan_and_the_cache_profile(tmp_path):
    dep = Deployment(base=tmp_path, mode="swarm", wan="inter-region", wan_shaper="relay",
                     cache_profile="distribution")
    dep.save()
    again = Deployment.load(tmp_path)
    assert (again.wan, again.wan_far, again.wan_shaper, again.cache_profile) == (
        "inter-region", "dtr", "relay", "distribution")
    assert again.cache_environment == {PROFILE_VARIABLE: "distribution"}
    assert Deployment(base=tmp_path, mode="bridge").cache_environment == {}


def test_the_hosts_file_names_its_deployments(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    names.add("aaaa1111", {"dtr.aaaa1111.dtrcheck.test": "172.18.0.2"}, hosts)
    names.add("bbbb2222", {"dtr.bbbb2222.dtrcheck.test": "172.18.0.3"}, hosts)
    assert names.deployment_ids(hosts) == ["aaaa1111", "bbbb2222"]
    names.remove("aaaa1111", hosts)
    assert names.deployment_ids(hosts) == ["bbbb2222"]


def test_a_deployment_is_alive_while_its_record_names_it(tmp_path):
    (tmp_path / "deployment.json").write_text(json.dumps({"id": "cafe0001"}))
    assert orphans.alive("cafe0001", {str(tmp_path)})
    assert not orphans.alive("cafe0002", {str(tmp_path)})       # another run's directory
    assert not orphans.alive("cafe0001", {str(tmp_path / "gone")})
    assert not orphans.alive("cafe0001", set())
