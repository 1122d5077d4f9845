"""probes.oci: synthesized images are self-consistent, unique, reproducible and loadable."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from dtr_cache_check.probes import oci


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("media", ["docker", "oci"])
def test_manifest_descriptors_match_the_blobs(media):
    image = oci.synthesize(layers=3, layer_size=4096, media=media)
    manifest = json.loads(image.manifest)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == image.manifest_media_type
    assert image.manifest_digest == _sha(image.manifest)
    described = [manifest["config"], *manifest["layers"]]
    assert len(described) == len(image.blobs) == 4
    for descriptor, blob in zip(described, image.blobs, strict=True):
        assert blob.digest == _sha(blob.data)
        assert blob.size == len(blob.data)
        assert descriptor == {"mediaType": blob.media_type, "size": blob.size,
                              "digest": blob.digest}


def test_diff_ids_are_digests_of_the_uncompressed_tars():
    image = oci.synthesize(layers=2)
    config = json.loads(image.config.data)
    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    assert config["config"]["Cmd"]
    assert len(config["history"]) == 2
    assert config["rootfs"]["type"] == "layers"
    expected = [_sha(gzip.decompress(layer.data)) for layer in image.layers]
    assert config["rootfs"]["diff_ids"] == expected
    assert [layer.diff_id for layer in image.layers] == expected
    assert image.config.diff_id is None


def test_two_calls_give_different_images():
    first, second = oci.synthesize(), oci.synthesize()
    assert first.manifest_digest != second.manifest_digest
    assert not {b.digest for b in first.blobs} & {b.digest for b in second.blobs}


def test_same_seed_gives_identical_bytes():
    first = oci.synthesize(seed=b"fixed", layers=2, layer_size=1000)
    second = oci.synthesize(seed=b"fixed", layers=2, layer_size=1000)
    assert first.manifest == second.manifest
    assert [b.data for b in first.blobs] == [b.data for b in second.blobs]
    other = oci.synthesize(seed=b"other", layers=2, layer_size=1000)
    assert other.manifest_digest != first.manifest_digest


def test_layers_within_an_image_differ():
    image = oci.synthesize(layers=3, seed=b"s")
    assert len({layer.digest for layer in image.layers}) == 3


def test_layer_is_a_gzipped_tar_with_one_regular_file():
    image = oci.synthesize(layers=1, layer_size=5000)
    assert image.layers[0].data[:2] == b"\x1f\x8b"
    with tarfile.open(fileobj=io.BytesIO(image.layers[0].data), mode="r:gz") as tar:
        members = tar.getmembers()
        assert len(members) == 1
        member = members[0]
        assert member.isreg()
        assert member.size == 5000
        assert member.mtime == oci.FIXED_MTIME
        assert not member.name.startswith("/")
        content = tar.extractfile(member)
        assert content is not None
        assert len(content.read()) == 5000


def test_docker_media_types_by_default():
    image = oci.synthesize(layers=1)
    assert image.manifest_media_type == oci.DOCKER_MANIFEST
    assert image.config.media_type == oci.DOCKER_CONFIG
    assert image.layers[0].media_type == oci.DOCKER_LAYER


def test_oci_media_types_when_asked():
    image = oci.synthesize(layers=2, media="oci")
    assert image.manifest_media_type == "application/vnd.oci.image.manifest.v1+json"
    assert image.config.media_type == "application/vnd.oci.image.config.v1+json"
    assert {layer.media_type for layer in image.layers} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"}
    assert json.loads(image.manifest)["mediaType"] == image.manifest_media_type


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        oci.synthesize(layers=0)
    with pytest.raises(ValueError):
        oci.synthesize(media="v1")  # type: ignore[arg-type]


def test_docker_archive_lists_what_it_holds():
    image = oci.synthesize(layers=2, layer_size=2048)
    archive = image.docker_archive("registry.example:5000/team/app:v1")
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["registry.example:5000/team/app:v1"]
    assert entry["Config"] == image.config.digest.split(":")[1] + ".json"
    assert files[entry["Config"]] == image.config.data
    assert len(entry["Layers"]) == 2
    for path, layer in zip(entry["Layers"], image.layers, strict=True):
        assert path.endswith("/layer.tar")
        assert _sha(files[path]) == layer.diff_id  # uncompressed, as docker load wants
    repositories = json.loads(files["repositories"])
    assert list(repositories) == ["registry.example:5000/team/app"]
    assert list(repositories["registry.example:5000/team/app"]) == ["v1"]


def test_docker_archive_defaults_to_latest():
    image = oci.synthesize(layers=1, layer_size=16)
    with tarfile.open(fileobj=io.BytesIO(image.docker_archive("localhost:5000/app")),
                      mode="r:") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest[0]["RepoTags"] == ["localhost:5000/app:latest"]


class _FakeClient:
    def __init__(self):
        self.calls: list[tuple] = []

    def push_blob(self, repo: str, data: bytes) -> str:
        self.calls.append(("blob", repo, _sha(data)))
        return _sha(data)

    def push_manifest(self, repo: str, reference: str, manifest: bytes, media_type: str) -> str:
        self.calls.append(("manifest", repo, reference, manifest, media_type))
        return _sha(manifest)


def test_push_sends_blobs_then_the_manifest():
    image = oci.synthesize(layers=2, layer_size=128)
    client = _FakeClient()
    assert image.push(client, "team/app", "v1") == image.manifest_digest
    assert client.calls[:-1] == [("blob", "team/app", b.digest) for b in image.blobs]
    assert client.calls[-1] == ("manifest", "team/app", "v1", image.manifest,
                                image.manifest_media_type)
