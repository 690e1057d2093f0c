"""Helpers for tests that run the project's commands as a user would."""

import contextlib
import fcntl
import json
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2

from plexus_dagster.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


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


@contextlib.contextmanager
def postgres_home(folder: Path) -> Iterator[Path]:
    """A DAGSTER_HOME in ``folder`` whose storage is a fresh database on the machine's Postgres."""
    database = f"plexus_test_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dbname="postgres", **POSTGRES)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(
        "telemetry: {enabled: false}\n"
        "run_coordinator:\n"
        "  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
        "storage:\n  postgres:\n    postgres_db:\n"
        f"      hostname: {POSTGRES['host']}\n      port: {POSTGRES['port']}\n"
        f"      username: {POSTGRES['user']}\n      db_name: {database}\n"
        # SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql scheme; psycopg2 is installed.
        "      scheme: postgresql+psycopg2\n"
    )
    try:
        yield folder
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Runs a command on a pseudo-terminal, as a person at a terminal would; returns its screen."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(
        [str(BIN / args[0]), *args[1:]],
        cwd=PROJECT_ROOT,
        env={**env, "TERM": "xterm-256color"},
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    output = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            output.extend(chunk)
        elif process.poll() is not None:
            break
    os.close(main)
    code = process.wait(timeout=30)
    return code, output.decode(errors="replace")


def wait_for(condition: Any, *, timeout: float, what: str, poll: float = 1.0) -> Any:
    """Polls ``condition`` until it returns something true; fails naming ``what`` at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Waited {timeout:.0f} s for {what}.")
        time.sleep(poll)


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], *, cwd: Path, log: Path) -> Iterator[None]:
    """Runs a long-lived command of the virtualenv (a daemon, a webserver) until the block ends."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, stdout=output, stderr=output
        )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def dagster_services(env: dict[str, str]) -> Iterator[str]:
    """dagster-webserver and dagster-daemon on the project's workspace; yields the UI's URL.

    Both run from the instance folder, as `make ui` runs them; their output goes to files there.
    """
    home = Path(env["DAGSTER_HOME"])
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    url = f"http://127.0.0.1:{free_port()}"
    webserver = ["dagster-webserver", "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]]
    with (
        running([*webserver, "-w", workspace], env, cwd=home, log=home / "webserver.log"),
        running(["dagster-daemon", "run", "-w", workspace], env, cwd=home, log=home / "daemon.log"),
    ):
        wait_for(
            lambda: _answers(f"{url}/server_info"), timeout=120, what=f"the UI at {url}", poll=0.5
        )
        yield url


CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, with nothing that reaches beyond this machine.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def browser_page(profile: Path) -> Iterator[Any]:
    """A page of headless Chromium with a fresh profile in ``profile``; a 1400x900 window."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise RuntimeError(
            f"The browser tests drive Debian's Chromium and found none at {CHROMIUM}; "
            "install it with `apt-get install -y chromium chromium-driver`."
        )
    with sync_playwright() as playwright:
        # Playwright passes --headless and --user-data-dir itself.
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
