"""The reference deployment's names in a hosts file: one block per deployment, added to and
taken out without touching anything else in the file."""

from __future__ import annotations

from pathlib import Path

from dtr_cache_check.reference.stack import names


def test_a_block_per_deployment_comes_and_goes_leaving_the_rest(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.1 mine.example  # the operator's\n")
    before = hosts.read_text()
    names.add("aaaa1111", {names.fqdn("aaaa1111", "dtr"): "172.18.0.2"}, hosts)
    names.add("bbbb2222", {names.fqdn("bbbb2222", "dtr"): "172.19.0.2"}, hosts)
    names.add("aaaa1111", {names.fqdn("aaaa1111", "cache"): "172.18.0.3"}, hosts)
    assert names.entries("aaaa1111", hosts) == {"dtr.aaaa1111.dtrcheck.test": "172.18.0.2",
                                                "cache.aaaa1111.dtrcheck.test": "172.18.0.3"}
    assert names.remove("aaaa1111", hosts)
    assert names.entries("aaaa1111", hosts) == {}
    assert names.entries("bbbb2222", hosts) == {"dtr.bbbb2222.dtrcheck.test": "172.19.0.2"}
    assert names.remove("bbbb2222", hosts) and not names.remove("bbbb2222", hosts)
    assert hosts.read_text() == before


def test_a_restarted_container_moves_its_name(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    name = names.fqdn("cccc3333", "cache")
    names.add("cccc3333", {name: "172.18.0.3"}, hosts)
    names.add("cccc3333", {name: "172.18.0.9"}, hosts)
    assert names.entries("cccc3333", hosts) == {name: "172.18.0.9"}
    assert hosts.read_text().count(name) == 1
