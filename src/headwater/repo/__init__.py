"""Repo folders: loading the definitions in their Python files, and creating new ones."""

from __future__ import annotations

from headwater.repo.loader import LoadedDefinition, definition_files, load_definitions, load_repo
from headwater.repo.template import InitResult, init_repo, project_name

__all__ = [
    "InitResult",
    "LoadedDefinition",
    "definition_files",
    "init_repo",
    "load_definitions",
    "load_repo",
    "project_name",
]
