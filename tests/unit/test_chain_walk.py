"""The chain walk (probes.chain): from the leaf's config.yml through each hop's, to DTR, a
loop, or a hop whose files were not given."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtr_cache_check.reference.seed_templates import cache_config, write_yaml
from dtr_cache_check.steps.chain import (
    DTR,
    LOOP,
    UNKNOWN,
    UNREADABLE,
    UNRESOLVED,
    NotCheckableHere,
    connect_to_for,
    is_dtr,
    walk,
)
from dtr_cache_check.steps.target import PeerCache, Target

DTR_URL = "https://dtr.example.invalid:4443"
LEAF = "https://leaf.example.invalid:443"
REGIONAL = "https://regional.example.invalid:443"
THIRD = "https://third.example.invalid:443"


def deploy_dir(tmp_path: Path, name: str, host: str, upstream: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    write_yaml(directory / "config.yml", cache_config(upstreams=[upstream], host=host))
    return directory


def leaf(tmp_path: Path, upstream: str, *behind: tuple[str, str, str]) -> Target:
    config = deploy_dir(tmp_path, "leaf", LEAF, upstream) / "config.yml"
    target = Target(mode="external", dtr_url=DTR_URL, cache_url=LEAF, cache_name="leaf",
                    dtr_user="alice", dtr_ca=None, cache_ca=None, cache_config=config)
    target.chain = [PeerCache("", deploy_dir=deploy_dir(tmp_path, name, host, up))
                    for name, host, up in behind]
    return target


def test_a_cache_whose_upstream_is_dtr_is_not_a_chain(tmp_path):
    found = walk(leaf(tmp_path, DTR_URL))
    assert found.end == DTR and not found.is_chain and len(found.hops) == 1


def test_leaf_and_regional_reach_dtr_and_the_regional_gets_its_url(tmp_path):
    target = leaf(tmp_path, REGIONAL, ("regional", REGIONAL, DTR_URL))
    found = walk(target)
    assert found.end == DTR and found.is_chain and len(found.hops) == 2
    assert target.chain[0].url == REGIONAL
    assert found.path() == f"{LEAF} -> {REGIONAL} -> DTR"


def test_a_regional_pointing_back_at_the_leaf_is_a_loop(tmp_path):
    found = walk(leaf(tmp_path, REGIONAL, ("regional", REGIONAL, LEAF)))
    assert found.end == LOOP and found.why == f"{LEAF} -> {REGIONAL} -> {LEAF}"


def test_a_leaf_chained_to_itself_is_a_loop(tmp_path):
    found = walk(leaf(tmp_path, LEAF))
    assert found.end == LOOP and found.why == f"{LEAF} -> {LEAF}"


def test_three_caches_deep(tmp_path):
    found = walk(leaf(tmp_path, REGIONAL, ("regional", REGIONAL, THIRD),
                      ("third", THIRD, DTR_URL)))
    assert found.end == DTR and len(found.hops) == 3


def test_an_upstream_without_its_files_stops_the_walk_saying_what_to_give(tmp_path):
    found = walk(leaf(tmp_path, REGIONAL))
    assert found.end == UNKNOWN and "--chain-deploy-dirs" in found.why


def test_a_hop_without_a_config_stops_the_walk(tmp_path):
    target = leaf(tmp_path, REGIONAL)
    target.chain = [PeerCache("", deploy_dir=tmp_path / "missing")]
    found = walk(target)
    assert found.end == UNREADABLE and "--chain-deploy-dirs" in found.why


def test_an_upstream_name_that_does_not_resolve_here_is_not_taken_for_dtr(tmp_path):
    """A typo'd upstream, or a regional cache known only inside its network, on DTR's port:
    neither DTR's address nor "not a chain" may be assumed for it."""
    other = "https://regional-typo.example.invalid:4443"
    assert is_dtr(other, DTR_URL) is None
    found = walk(leaf(tmp_path, other))
    assert found.end == UNRESOLVED and found.is_chain and "--cache-host" in found.why
    with pytest.raises(NotCheckableHere, match="--cache-host"):
        connect_to_for(other)


def test_a_name_that_resolves_here_is_probed_as_named():
    assert connect_to_for("https://localhost:4443") is None
    assert is_dtr("https://localhost:4443", "https://127.0.0.1:4443") is True
    assert is_dtr("https://localhost:4443", "https://127.0.0.1:5000") is False
