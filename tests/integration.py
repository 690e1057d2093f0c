"""Helpers for tests that run the project's commands as a user would."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from plexus_dagster.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


def command_env(home: Path, storage: Path, data_dir: Path) -> dict[str, str]:
    """The environment of a user whose instance and storage live in the given folders."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLEXUS_STORAGE_DIR": str(storage),
        "PLEXUS_DATA_DIR": str(data_dir),
    }


def run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs a command of the virtualenv from the project folder."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_output(completed: subprocess.CompletedProcess) -> Any:
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
