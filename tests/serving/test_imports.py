"""The web framework stays at the edge: the core and push never import it."""

from __future__ import annotations

import subprocess
import sys

WEB = ["fastapi", "starlette", "uvicorn", "pydantic", "orjson"]


def loaded_after(statement: str, modules: list[str]) -> list[str]:
    code = (f"import sys\n{statement}\n"
            f"print(','.join(m for m in {modules!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_headwater_loads_no_server_library() -> None:
    heavy = [*WEB, "redis", "msgpack", "pandas", "click"]
    assert loaded_after("import headwater", heavy) == []


def test_push_and_online_reads_do_not_import_the_web_framework() -> None:
    statement = ("import headwater.streaming.push, headwater.serving.online, "
                 "headwater.store, headwater.cli.main")
    assert loaded_after(statement, WEB) == []
