import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from plexus_dagster.sources.loading import SourceError, locate_source, read_source
from plexus_dagster.sources.models import SourceConfig, SourceConfigError, load_sources
from plexus_dagster.sources.normalize import normalize_items


def project_sources() -> dict[str, SourceConfig]:
    return load_sources(PROJECT_ROOT / "sources")


def test_banking77_test_split_loads_every_row(settings: PlexusSettings) -> None:
    source = project_sources()["banking77_test"]

    frame = read_source(source, locate_source(source, settings))
    normalized = normalize_items(source, frame)

    assert len(normalized.items) == 3080
    assert normalized.rejected.empty
    first = normalized.items.iloc[0]
    assert first["item_id"] == "banking77_test-1"
    assert json.loads(first["labels"]) == {"category": frame.iloc[0]["category"]}


def test_twacs_conversations_keep_their_turns(settings: PlexusSettings) -> None:
    source = project_sources()["twacs"]

    frame = read_source(source, locate_source(source, settings))
    items = normalize_items(source, frame).items

    assert len(items) == 491
    turns = items.iloc[0]["turns"]
    assert len(turns) >= 2
    assert {turn["speaker"] for turn in turns} == {"customer", "agent"}
    assert items.iloc[0]["text"].startswith(f"customer: {turns[0]['text']}")
    assert "__cust>" not in items.iloc[0]["text"]
    assert json.loads(items.iloc[0]["labels"])["tag"] == frame.iloc[0]["tag"]


def test_rows_without_text_or_id_or_with_a_repeated_id_are_recorded_and_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [
        {"id": "a", "body": "hello", "intent": "x"},
        {"id": "b", "body": "   ", "intent": "x"},
        {"id": "", "body": "no id", "intent": "x"},
        {"id": "a", "body": "again", "intent": "y"},
        {"id": "c", "body": "fine", "intent": None},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    source = SourceConfig.model_validate(
        {
            "name": "mixed",
            "format": "jsonl",
            "path": str(path),
            "columns": {"id": "id", "text": "body", "labels": ["intent"]},
        }
    )

    normalized = normalize_items(source, read_source(source, path))

    assert normalized.items["item_id"].tolist() == ["a", "c"]
    assert normalized.rejected.to_dict(orient="records") == [
        {"row": 2, "item_id": "b", "reason": "no text"},
        {"row": 3, "item_id": "", "reason": "no id"},
        {"row": 4, "item_id": "a", "reason": "duplicate id a"},
    ]


def test_missing_file_names_the_source_and_path(tmp_path: Path) -> None:
    source = SourceConfig.model_validate(
        {"name": "gone", "format": "csv", "path": "nowhere.csv", "columns": {"text": "t"}}
    )
    settings = PlexusSettings(data_dir=tmp_path, storage_dir=tmp_path / "storage")

    with pytest.raises(SourceError, match=r"Source 'gone': file .*nowhere.csv does not exist"):
        locate_source(source, settings)


def test_unreadable_file_names_the_source_the_path_and_the_format(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_text("this is not parquet")
    source = SourceConfig.model_validate(
        {"name": "broken", "format": "parquet", "path": str(path), "columns": {"text": "t"}}
    )

    with pytest.raises(SourceError, match=r"Source 'broken': cannot read .*broken.parquet as"):
        read_source(source, path)


def test_a_column_the_file_lacks_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("text,category\nhello,x\n")
    source = SourceConfig.model_validate(
        {"name": "rows", "format": "csv", "path": str(path), "columns": {"text": "body"}}
    )

    with pytest.raises(SourceError, match="has no column 'body'; it has 'text', 'category'"):
        read_source(source, path)


def test_invalid_source_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "sources:\n  - name: x\n    format: xls\n    path: a.xls\n    columns: {text: t}\n"
    )

    with pytest.raises(SourceConfigError) as raised:
        load_sources(tmp_path)

    assert [(e.line, e.path.name) for e in raised.value.errors] == [(3, "bad.yaml")]
    assert "format" in raised.value.errors[0].message


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def banking77_server(data_dir: Path) -> Iterator[str]:
    """A local HTTP server serving the shared copy of banking77, as its public URL would."""
    handler = functools.partial(_CountingHandler, directory=str(data_dir / "banking77"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _CountingHandler.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_without_a_data_folder_banking77_is_downloaded_once_and_cached(
    banking77_server: str, tmp_path: Path
) -> None:
    declared = project_sources()["banking77_test"]
    source = declared.model_copy(update={"url": f"{banking77_server}/test.csv"})
    settings = PlexusSettings(data_dir=None, storage_dir=tmp_path / "storage")

    first = locate_source(source, settings)
    second = locate_source(source, settings)

    assert first == second
    assert first.is_relative_to(settings.downloads_dir)
    assert _CountingHandler.requests == ["/test.csv"]
    assert len(normalize_items(source, read_source(source, first)).items) == 3080


def test_a_url_that_fails_names_the_source_and_leaves_no_partial_file(
    banking77_server: str, tmp_path: Path
) -> None:
    source = project_sources()["banking77_test"].model_copy(
        update={"url": f"{banking77_server}/missing.csv"}
    )
    settings = PlexusSettings(data_dir=None, storage_dir=tmp_path / "storage")

    with pytest.raises(SourceError, match="Source 'banking77_test': could not download"):
        locate_source(source, settings)

    assert [p for p in settings.downloads_dir.rglob("*") if p.is_file()] == []


def test_a_url_that_does_not_answer_times_out(tmp_path: Path) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    source = project_sources()["banking77_test"].model_copy(
        update={"url": f"http://127.0.0.1:{port}/test.csv"}
    )
    settings = PlexusSettings(data_dir=None, storage_dir=tmp_path / "storage", download_timeout=0.5)

    try:
        with pytest.raises(SourceError, match="could not download"):
            locate_source(source, settings)
    finally:
        silent.close()


def test_a_filter_keeps_matching_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("text,tag\na,UNK\nb,DELAY\n")
    source = SourceConfig.model_validate(
        {
            "name": "rows",
            "format": "csv",
            "path": str(path),
            "filter": "tag != 'UNK'",
            "columns": {"text": "text", "labels": ["tag"]},
        }
    )

    frame = read_source(source, path)

    assert isinstance(frame, pd.DataFrame)
    assert frame["text"].tolist() == ["b"]


def test_missing_labels_stay_missing_and_whole_numbers_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [
        {"id": 1, "text": "a", "label": 1},
        {"id": 2, "text": "b", "label": 0},
        {"id": 3, "text": "c"},
        {"id": 4, "text": "d", "label": None},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    source = SourceConfig.model_validate(
        {
            "name": "numbers",
            "format": "jsonl",
            "path": str(path),
            "columns": {"id": "id", "text": "text", "labels": ["label"]},
        }
    )

    items = normalize_items(source, read_source(source, path)).items

    assert items["item_id"].tolist() == ["1", "2", "3", "4"]
    assert [json.loads(v)["label"] for v in items["labels"]] == ["1", "0", None, None]


def test_skipped_rows_are_named_by_their_row_in_the_file_even_after_a_filter(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,text,tag\n1,,skip\n1,,keep\n1,first,keep\n2,second,keep\n")
    source = SourceConfig.model_validate(
        {
            "name": "rows",
            "format": "csv",
            "path": str(path),
            "filter": "tag != 'skip'",
            "columns": {"id": "id", "text": "text", "labels": ["tag"]},
        }
    )

    normalized = normalize_items(source, read_source(source, path))

    # A first row without text does not claim its id from the usable row after it.
    assert normalized.items["item_id"].tolist() == ["1", "2"]
    assert normalized.rejected.to_dict(orient="records") == [
        {"row": 2, "item_id": "1", "reason": "no text"}
    ]


class _TrickleHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(60):
            try:
                self.wfile.write(b"x" * 1000)
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_download_that_trickles_stops_at_the_timeout_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = project_sources()["banking77_test"].model_copy(
        update={"url": f"http://127.0.0.1:{server.server_address[1]}/test.csv"}
    )
    settings = PlexusSettings(data_dir=None, storage_dir=tmp_path / "storage", download_timeout=1.0)

    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match=r"not complete after 1 s"):
            locate_source(source, settings)
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()

    assert elapsed < 3
    assert [p for p in settings.downloads_dir.rglob("*") if p.is_file()] == []
