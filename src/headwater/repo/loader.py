"""Load the definitions of a repo folder from its Python files.

A repo folder is the source of truth for ``headwater plan`` and ``headwater apply``: every
``*.py`` file in it (and in its sub-folders) is imported, and every module-level Entity,
FeatureView and FeatureService is collected. Folders that hold no definitions are skipped
(hidden folders, ``data``, virtual environments, caches), and so are files whose name starts
with ``_`` or ``test_``.

Each file is imported under a unique module name, with the repo folder first on
``sys.path`` so that files can import each other (``from entities import driver``). The
same object reached from two files counts once, and so do two equal definitions; two
different definitions with the same kind and name are an error naming both files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from headwater.definitions import Definition
from headwater.definitions.base import describe
from headwater.errors import DefinitionError, HeadwaterError

SKIPPED_DIRS = frozenset({
    "data", "__pycache__", "node_modules", "site-packages", "venv", "env", "build", "dist",
})
_MODULE_PREFIX = "_headwater_repo_"


@dataclass(frozen=True)
class LoadedDefinition:
    """A definition found in a repo file, with the file it was first found in."""

    obj: Definition
    path: Path


def definition_files(repo: str | os.PathLike[str]) -> list[Path]:
    """The Python files of ``repo`` that hold definitions, in a stable order."""
    root = Path(repo).resolve()
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not _skip_dir(here / d))
        found.extend(
            here / name for name in sorted(files)
            if name.endswith(".py") and not name.startswith(("_", "test_"))
        )
    return found


def _skip_dir(path: Path) -> bool:
    name = path.name
    return (name.startswith(".") or name in SKIPPED_DIRS
            or (path / "pyvenv.cfg").exists())  # any virtual environment, whatever its name


def load_definitions(repo: str | os.PathLike[str]) -> list[Definition]:
    """Import the repo's definition files and return their definitions, deduplicated.

    Raises DefinitionError when a file defines an invalid object or two files define
    different objects under one kind and name, and HeadwaterError when a file cannot be
    imported; each message names the file."""
    return [found.obj for found in load_repo(repo)]


def load_repo(repo: str | os.PathLike[str]) -> list[LoadedDefinition]:
    """Like :func:`load_definitions`, keeping the file each definition was found in."""
    root = Path(repo).resolve()
    if not root.is_dir():
        raise HeadwaterError(f"repo folder {root} does not exist")
    seen: dict[tuple[str, str], LoadedDefinition] = {}
    for path in definition_files(root):
        for obj in _module_definitions(_import(root, path)):
            key = (obj.kind, obj.name)
            first = seen.get(key)
            if first is None:
                seen[key] = LoadedDefinition(obj, path)
            elif first.obj is not obj and first.obj != obj:
                raise DefinitionError(
                    describe(obj), "name",
                    f"two different definitions share this name, in "
                    f"{_relative(root, first.path)} and {_relative(root, path)}",
                    "give each a unique name, or define it once and import it in the other file",
                )
    return list(seen.values())


def _module_definitions(module: ModuleType) -> Iterator[Definition]:
    for value in vars(module).values():
        if isinstance(value, Definition):
            yield value


def _import(root: Path, path: Path) -> ModuleType:
    """Import one repo file under a unique name; errors name the file and keep the cause."""
    rel = _relative(root, path)
    name = _module_name(root, path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HeadwaterError(f"{rel}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    sys.modules[name] = module
    sys.path.insert(0, str(root))
    try:
        spec.loader.exec_module(module)
    except DefinitionError as exc:
        raise DefinitionError(f"{exc.obj} (in {rel})", exc.field, exc.problem,
                              exc.fix) from exc
    except SyntaxError as exc:
        raise HeadwaterError(
            f"{rel}, line {exc.lineno}: syntax error: {exc.msg}. Fix: correct the Python syntax"
        ) from exc
    except Exception as exc:
        # User code may raise anything while it is imported; name the file, keep the cause.
        raise HeadwaterError(
            f"{rel}: importing the file failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        sys.path.remove(str(root))
        _forget_modules(root, before)
    return module


def _forget_modules(root: Path, before: set[str]) -> None:
    """Drop the modules imported from the repo folder, so the next load reads the files
    again and a same-named file of another repo is never served from the module cache."""
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules[name], "__file__", None)
        if name.startswith(_MODULE_PREFIX) or (
            isinstance(origin, str) and _is_repo_code(root, Path(origin).resolve())
        ):
            del sys.modules[name]


def _is_repo_code(root: Path, path: Path) -> bool:
    """Whether ``path`` is one of the repo's own files (not a library in a venv inside it)."""
    if not path.is_relative_to(root):
        return False
    folder = path.parent
    while folder != root:
        if _skip_dir(folder):
            return False
        folder = folder.parent
    return True


def _module_name(root: Path, path: Path) -> str:
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{_MODULE_PREFIX}{path.stem}_{digest}"


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()
