"""Finding a source's file, downloading it when it lives at a URL, and reading it."""

import hashlib
import logging
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

from plexus_dagster.settings import PlexusSettings
from plexus_dagster.sources.models import SourceConfig

logger = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source that cannot be found or read; the message names the source and the path."""


def _local_path(source: SourceConfig, settings: PlexusSettings) -> Path | None:
    if source.path is None:
        return None
    path = Path(source.path).expanduser()
    if not path.is_absolute():
        if settings.data_dir is None:
            return None
        path = settings.data_dir / path
    return path


def _download_target(source: SourceConfig, url: str, settings: PlexusSettings) -> Path:
    # The URL's hash names the folder: a source whose URL changes downloads again.
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return settings.downloads_dir / source.name / digest / Path(url.split("?")[0]).name


def _download(source: SourceConfig, url: str, settings: PlexusSettings) -> Path:
    target = _download_target(source, url, settings)
    if target.exists():
        logger.info("Using the cached download of source '%s' at %s.", source.name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading source '%s' from %s.", source.name, url)
    partial = Path(tempfile.mkstemp(dir=target.parent, suffix=".partial")[1])
    deadline = time.monotonic() + settings.download_timeout
    try:
        with (
            urllib.request.urlopen(url, timeout=settings.download_timeout) as response,
            partial.open("wb") as file,
        ):
            while chunk := response.read1(1 << 16):
                file.write(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not complete after {settings.download_timeout:g} s")
        # Renamed only when complete, so an interrupted download is never taken for the file.
        partial.replace(target)
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise SourceError(
            f"Source '{source.name}': could not download {url} ({e}). Check the network, or set "
            "PLEXUS_DATA_DIR to a folder that holds the file at its path."
        ) from e
    finally:
        partial.unlink(missing_ok=True)
    return target


def local_copy(source: SourceConfig, settings: PlexusSettings) -> Path | None:
    """The file ``locate_source`` would use, when it is already on this machine; no download."""
    local = _local_path(source, settings)
    if local is not None and local.is_file():
        return local
    if source.url is not None:
        cached = _download_target(source, source.url, settings)
        return cached if cached.is_file() else None
    return None


def source_signature(source: SourceConfig, path: Path | None) -> str:
    """Changes when the source's declaration or its file changes: items made before are stale."""
    parts = [source.model_dump_json()]
    if path is not None and path.is_file():
        stat = path.stat()
        parts += [str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def locate_source(source: SourceConfig, settings: PlexusSettings) -> Path:
    """The local file of ``source``: its path when present, else its URL downloaded once."""
    local = _local_path(source, settings)
    if local is not None and local.is_file():
        return local
    if source.url is not None:
        return _download(source, source.url, settings)
    if local is None:
        raise SourceError(
            f"Source '{source.name}': path {source.path!r} is relative, and no data folder is "
            "set. Set PLEXUS_DATA_DIR to the folder that holds it."
        )
    raise SourceError(
        f"Source '{source.name}': file {local} does not exist. Fix the path in the source's "
        "YAML file or set PLEXUS_DATA_DIR."
    )


def read_source(source: SourceConfig, path: Path) -> pd.DataFrame:
    """Reads ``path`` in the source's format; every value of a text file is read as a string."""
    try:
        if source.format == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif source.format == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise SourceError(
            f"Source '{source.name}': cannot read {path} as {source.format} ({e}). Check the "
            "file, or the format declared for the source."
        ) from e

    # Row positions of the file, kept through the filter so that reasons name the file's rows.
    frame = frame.reset_index(drop=True)
    declared = [source.columns.id, source.columns.text, *source.columns.labels]
    declared += source.columns.metadata
    if source.conversation is not None:
        declared += source.conversation.columns
    missing = sorted({c for c in declared if c is not None} - set(frame.columns))
    if missing:
        raise SourceError(
            f"Source '{source.name}': {path} has no column {', '.join(map(repr, missing))}; it "
            f"has {', '.join(map(repr, frame.columns))}. Fix the source's columns mapping."
        )

    if source.filter:
        try:
            frame = frame.query(source.filter)
        except Exception as e:  # pandas raises many kinds for a bad expression
            raise SourceError(
                f"Source '{source.name}': filter {source.filter!r} failed ({e})."
            ) from e
    return frame
