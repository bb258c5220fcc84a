"""README.md runs: its quickstart shell block and then all its Python blocks, in a temp dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def test_first_screen_gives_the_two_commands() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:25])
    assert "make demo" in first_screen and "make test" in first_screen


def test_quickstart_runs(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    shell = [b for b in blocks("bash") if b.startswith("headwater init my_repo")]
    assert len(shell) == 1
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", shell[0]], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "driver_stats" in result.stdout

    code = "\n".join(blocks("python"))
    assert "get_historical_features" in code
    script = tmp_path / "readme.py"  # a file, as on-demand functions need readable source
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "driver_stats__conv_rate" in result.stdout
