"""The artifact store: a local folder of immutable files, each known by its SHA-256.

Layout: ``<root>/<model>/<run_id>/<filename>`` (``model.<ext>`` for the fitted estimator,
``reference.json`` for reference statistics). An :class:`~headwater.models.base.ArtifactRef`
keeps the path relative to ``root`` (so a repo folder can move), the SHA-256, the size and
the format.

* :meth:`ArtifactStore.put` writes to a temporary file in the target folder, fsyncs it and
  links it into place, so a reader never sees a half-written file; an existing file is never
  replaced (the same bytes again is a no-op, different bytes a RegistryError).
* :meth:`ArtifactStore.get` reads the bytes and checks them against the recorded SHA-256; a
  missing file or a mismatch is a RegistryError naming the artifact and the fix. Loaders
  (:mod:`~headwater.models.formats`) only ever see bytes that passed this check.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from headwater.errors import RegistryError
from headwater.models.base import ArtifactRef

_FIX = "re-register the model by training again; do not edit artifacts by hand"


def sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Immutable artifact files under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, ref: ArtifactRef) -> Path:
        """The file ``ref`` points at; a uri that leaves ``root`` is a RegistryError."""
        parts = Path(ref.uri).parts
        if not parts or Path(ref.uri).is_absolute() or ".." in parts:
            raise RegistryError(f"artifact uri {ref.uri!r} is not a path inside the artifact "
                                f"store {self.root}. Fix: {_FIX}")
        return self.root.joinpath(*parts)

    def put(self, model: str, run_id: str, filename: str, data: bytes,
            format: str) -> ArtifactRef:
        """Store ``data`` as ``<model>/<run_id>/<filename>`` and return its reference.

        Writing the same bytes twice returns the same reference; different bytes under an
        existing name are refused (artifacts are immutable once registered)."""
        for what, part in (("model", model), ("run_id", run_id), ("filename", filename)):
            if not part or part in (".", "..") or "/" in part or "\\" in part:
                raise RegistryError(f"artifact {what} {part!r} is not a plain file or folder "
                                    f"name. Fix: pass a name without '/' or '..'")
        ref = ArtifactRef(f"{model}/{run_id}/{filename}", sha256(data), len(data), format)
        target = self.path(ref)
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                self._write_new(folder, target, data)
        except OSError as exc:
            raise RegistryError(f"cannot write artifact {target}: {exc}. Fix: make the "
                                "artifact folder writable ('artifacts:' in headwater.yaml)"
                                ) from exc
        existing = self._hash_of(target)
        if existing != ref.sha256:
            raise RegistryError(
                f"artifact {target} already exists with different content (sha256 {existing}, "
                f"new {ref.sha256}); artifacts are never overwritten. Fix: write under a new "
                "run id")
        return ref

    def _write_new(self, folder: Path, target: Path, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, target)  # fails if the name exists: never replaces a file
            except FileExistsError:
                return  # written concurrently; put() compares the hashes
            except OSError:  # a file system without hard links
                if not target.exists():
                    os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        _fsync_dir(folder)

    def _hash_of(self, target: Path) -> str:
        try:
            return sha256(target.read_bytes())
        except OSError as exc:
            raise RegistryError(f"cannot read artifact {target}: {exc}. Fix: {_FIX}") from exc

    def get(self, ref: ArtifactRef) -> bytes:
        """The bytes of ``ref``, verified against its SHA-256 (RegistryError otherwise)."""
        target = self.path(ref)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"artifact {target} is missing (expected sha256 "
                                f"{ref.sha256}). Fix: {_FIX}") from None
        except OSError as exc:
            raise RegistryError(f"cannot read artifact {target}: {exc}. Fix: {_FIX}") from exc
        actual = sha256(data)
        if actual != ref.sha256:
            raise RegistryError(
                f"artifact {target} does not match the registry: expected sha256 "
                f"{ref.sha256}, actual {actual}; it was not loaded. Fix: {_FIX}")
        return data

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the file is there with the recorded size (no hashing: cheap)."""
        target = self.path(ref)
        return target.is_file() and target.stat().st_size == ref.size


def _fsync_dir(folder: Path) -> None:
    """Make the new directory entry durable (POSIX; a no-op where folders cannot be
    opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
