"""REGISTRY_* overrides and Go durations, held to distribution's own behaviour
(configuration/parser.go: overwriteFields, overwriteStruct, overwriteMap; Go's
time.ParseDuration) rather than to this project's reading of it."""

from __future__ import annotations

import pytest

from dtr_cache_formats.durations import DurationError, parse_duration
from dtr_cache_formats.registry_config import apply_env_overrides


def seed() -> dict:
    return {"storage": {"filesystem": {"rootdirectory": "/var/lib/registry"},
                        "delete": {"enabled": False}},
            "middleware": {"registry": [{"name": "downstream",
                                         "options": {"blobttl": "24h"}}]}}


def test_a_key_is_matched_case_insensitively_and_the_value_read_as_yaml():
    config = seed()
    keys = apply_env_overrides(config, {"REGISTRY_STORAGE_DELETE_ENABLED": "true",
                                        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/srv"})
    assert config["storage"]["delete"]["enabled"] is True
    assert config["storage"]["filesystem"]["rootdirectory"] == "/srv"
    assert keys == ["storage.delete.enabled", "storage.filesystem.rootdirectory"]


def test_a_list_is_indexed_by_number_and_its_length_appends():
    config = seed()
    apply_env_overrides(config, {"REGISTRY_MIDDLEWARE_REGISTRY_0_OPTIONS_BLOBTTL": "1h"})
    assert config["middleware"]["registry"][0]["options"]["blobttl"] == "1h"
    apply_env_overrides(config, {"REGISTRY_MIDDLEWARE_REGISTRY_1_NAME": "other"})
    assert config["middleware"]["registry"][1] == {"name": "other"}


@pytest.mark.parametrize(("name", "words"), [
    ("REGISTRY_MIDDLEWARE_REGISTRY_5_NAME", "undefined index 5"),
    ("REGISTRY_MIDDLEWARE_REGISTRY_X_NAME", "non-numeric index"),
])
def test_a_bad_index_is_an_error_as_distribution_refuses_to_start(name, words):
    with pytest.raises(ValueError, match=words):
        apply_env_overrides(seed(), {name: "x"})


def test_every_underscore_is_a_level_and_a_new_key_is_lowercased():
    config = {"storage": {"some_key": 1}}
    apply_env_overrides(config, {"REGISTRY_STORAGE_SOME_KEY": "2"})
    assert config["storage"] == {"some_key": 1, "some": {"key": 2}}


def test_a_scalar_with_parts_left_is_left_alone():
    config = {"storage": {"filesystem": "plain"}}
    assert apply_env_overrides(config, {"REGISTRY_STORAGE_FILESYSTEM_X": "1"}) == []
    assert config == {"storage": {"filesystem": "plain"}}


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("1h30m", 5400), ("0", 0),
                                               ("1.5h", 5400), ("500ms", 0.5)])
def test_go_durations(text, seconds):
    assert parse_duration(text)[0] == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["86400", "1.5", "h", "", "24x", "1e3s"])
def test_what_go_time_parse_duration_refuses(text):
    with pytest.raises(DurationError):
        parse_duration(text)
