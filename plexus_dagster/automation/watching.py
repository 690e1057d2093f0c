"""Noticing that a source's file is new or changed, once per change.

A file is looked at by size and modification time; only when one of them moved is it read to
compare its SHA-256 with the one seen before, so a file that was touched but not changed
starts nothing. What was seen is kept as JSON in the sensor's cursor, which Dagster stores
with each tick, so a restarted daemon goes on from the same state.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from plexus_dagster.settings import PlexusSettings
from plexus_dagster.sources.models import SourceConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileState:
    """What the sensor saw of a source's file."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    def same_stat(self, path: Path, size: int, mtime_ns: int) -> bool:
        return (self.path, self.size, self.mtime_ns) == (str(path), size, mtime_ns)


@dataclass(frozen=True)
class Change:
    """A source whose file is new or has new content."""

    source: str
    state: FileState

    @property
    def run_key(self) -> str:
        # The modification time keeps a file changed back to earlier content a new change.
        return f"{self.source}:{self.state.sha256[:16]}:{self.state.mtime_ns}"


def watched_paths(sources: Mapping[str, SourceConfig], settings: PlexusSettings) -> dict[str, Path]:
    """Each source with a local path, and that path; sources known only by a URL have none."""
    paths = {}
    for name, source in sources.items():
        if source.path is None:
            continue
        path = Path(source.path).expanduser()
        if not path.is_absolute():
            if settings.data_dir is None:
                continue
            path = settings.data_dir / path
        paths[name] = path
    return paths


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def read_cursor(cursor: str | None) -> dict[str, FileState]:
    if not cursor:
        return {}
    return {name: FileState(**state) for name, state in json.loads(cursor).items()}


def write_cursor(states: Mapping[str, FileState]) -> str:
    return json.dumps({name: asdict(state) for name, state in sorted(states.items())})


def _look(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def detect_changes(
    paths: Mapping[str, Path],
    seen: Mapping[str, FileState],
    *,
    already_loaded: Callable[[str], bool],
) -> tuple[list[Change], dict[str, FileState]]:
    """The sources whose file changed since ``seen``, and the states to remember.

    Args:
        paths: each watched source's file.
        seen: what the previous look recorded.
        already_loaded: for a source never seen before, whether its stored items already come
            from the file as it is now; then the file is recorded and nothing starts.
    """
    changes = []
    states = {name: state for name, state in seen.items() if name in paths}
    for name, path in sorted(paths.items()):
        before = _look(path)
        if before is None:
            continue
        previous = seen.get(name)
        if previous is not None and previous.same_stat(path, *before):
            continue
        digest = file_sha256(path)
        if _look(path) != before:
            logger.info("The file of source '%s' is still being written: %s.", name, path)
            continue
        state = FileState(str(path), before[0], before[1], digest)
        states[name] = state
        if previous is None and already_loaded(name):
            continue
        if previous is not None and previous.sha256 == digest and previous.path == str(path):
            continue
        changes.append(Change(name, state))
    return changes, states
