"""The callable behind a registered on-demand view.

The registry keeps only the function's source text (``function_source``). The function
object comes from the definitions applied in this process (:func:`remember`), or else from
the repo's Python files (:func:`~headwater.repo.loader.load_definitions`), which is how a
server process finds it. A function whose source differs from the registered version is
refused: running it would serve values computed by code the registry does not know.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from headwater.definitions import Definition, OnDemandFeatureView
from headwater.errors import DefinitionError

Function = Callable[..., Any]

_APPLIED: dict[tuple[str, str, str], Function] = {}
_LOCK = threading.Lock()


def remember(project: str, objects: Iterable[Definition]) -> None:
    """Keep the functions of the on-demand views just applied to ``project`` in this
    process, keyed by their source text."""
    with _LOCK:
        for obj in objects:
            if isinstance(obj, OnDemandFeatureView) and obj.function is not None:
                _APPLIED[(project, obj.name, obj.function_source)] = obj.function


class FunctionResolver:
    """Finds the functions of registered on-demand views of one project and repo."""

    def __init__(self, project: str, repo_path: str | os.PathLike[str]) -> None:
        self._project = project
        self._repo = Path(repo_path)
        self._loaded: dict[tuple[str, str], Function] = {}

    def resolve(self, view: OnDemandFeatureView) -> Function:
        """The function of ``view`` (as registered). Raises DefinitionError naming the view
        and the fix when the repo does not define it or defines different code."""
        key = (view.name, view.function_source)
        function = _APPLIED.get((self._project, *key)) or self._loaded.get(key)
        if function is not None:
            return function
        return self._load(view)

    def _load(self, view: OnDemandFeatureView) -> Function:
        from headwater.repo.loader import load_definitions

        found = None
        for obj in load_definitions(self._repo):
            if isinstance(obj, OnDemandFeatureView) and obj.function is not None:
                self._loaded[(obj.name, obj.function_source)] = obj.function
                if obj.name == view.name:
                    found = obj
        me = f"OnDemandFeatureView '{view.name}'"
        if found is None:
            raise DefinitionError(
                me, "function", f"the repo {self._repo} does not define it, so the registered "
                "function cannot be run", "restore its definition in the repo, or run "
                "headwater apply to register what the repo defines")
        if found.function_source != view.function_source:
            raise DefinitionError(
                me, "function", "the function in the repo differs from the registered "
                "version", "run headwater apply to register the changed function, or "
                "restore the registered code")
        return self._loaded[(view.name, view.function_source)]
