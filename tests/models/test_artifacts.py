"""The artifact store: layout, atomic immutable writes, SHA-256 checked reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from headwater.errors import RegistryError
from headwater.models.artifacts import ArtifactStore
from headwater.models.base import ArtifactRef


def test_put_writes_under_model_and_run_and_get_returns_the_bytes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.put("churn", "run1", "model.skops", b"fitted", "skops")
    assert ref == ArtifactRef("churn/run1/model.skops", hashlib.sha256(b"fitted").hexdigest(),
                              6, "skops")
    assert (tmp_path / "artifacts" / "churn" / "run1" / "model.skops").read_bytes() == b"fitted"
    assert store.get(ref) == b"fitted"
    assert store.exists(ref)
    # no temporary files are left next to it
    assert [p.name for p in (tmp_path / "artifacts" / "churn" / "run1").iterdir()] == [
        "model.skops"]
    # the uri is relative: a moved store still reads it
    (tmp_path / "artifacts").rename(tmp_path / "moved")
    assert ArtifactStore(tmp_path / "moved").get(ref) == b"fitted"


def test_the_same_bytes_again_is_a_no_op_and_different_bytes_are_refused(
        tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put("churn", "run1", "model.skops", b"one", "skops")
    assert store.put("churn", "run1", "model.skops", b"one", "skops") == ref
    with pytest.raises(RegistryError, match=r"already exists with different content.*never "
                       r"overwritten"):
        store.put("churn", "run1", "model.skops", b"two", "skops")
    assert store.get(ref) == b"one"


def test_a_tampered_artifact_is_refused_naming_path_hashes_and_fix(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put("churn", "run1", "model.pkl", b"original bytes", "pickle")
    path = tmp_path / "churn" / "run1" / "model.pkl"
    path.write_bytes(b"evil bytes")
    actual = hashlib.sha256(b"evil bytes").hexdigest()
    with pytest.raises(RegistryError) as err:
        store.get(ref)
    message = str(err.value)
    assert str(path) in message
    assert ref.sha256 in message and actual in message
    assert "re-register the model by training again; do not edit artifacts by hand" in message


def test_a_missing_artifact_is_a_clear_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = ArtifactRef("churn/run9/model.skops", "00" * 32, 10, "skops")
    assert not store.exists(ref)
    with pytest.raises(RegistryError, match=r"model\.skops is missing.*Fix: re-register"):
        store.get(ref)


@pytest.mark.parametrize("uri", ["../outside", "/etc/passwd", "churn/../../x", ""])
def test_a_uri_outside_the_store_is_refused(tmp_path: Path, uri: str) -> None:
    with pytest.raises(RegistryError, match="not a path inside the artifact store"):
        ArtifactStore(tmp_path / "store").get(ArtifactRef(uri, "00" * 32, 1, "skops"))


@pytest.mark.parametrize(("model", "run_id", "filename"), [
    ("churn", "..", "model.skops"), ("a/b", "run", "model.skops"), ("churn", "run", "x/y")])
def test_put_refuses_names_that_are_paths(tmp_path: Path, model: str, run_id: str,
                                          filename: str) -> None:
    with pytest.raises(RegistryError, match="not a plain file or folder name"):
        ArtifactStore(tmp_path).put(model, run_id, filename, b"x", "skops")
