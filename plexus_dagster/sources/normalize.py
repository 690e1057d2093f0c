"""Normalizing a source's rows into items: id, text, turns, metadata, labels."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from plexus_dagster.sources.models import ConversationFormat, SourceConfig

ITEM_COLUMNS = ["item_id", "text", "turns", "metadata", "labels"]
_TAGGED_TURN = re.compile(r"<(\w+?)__\s*(.*?)\s*__\1>", re.DOTALL)


@dataclass(frozen=True)
class NormalizedItems:
    """Items ready to store, and the rows that were skipped with the reason."""

    items: pd.DataFrame
    rejected: pd.DataFrame


def parse_turns(conversation: ConversationFormat, values: list[str]) -> list[dict[str, str]]:
    """The turns written in ``values``, in order, each a speaker and a text."""
    turns = []
    for value in values:
        for speaker, text in _TAGGED_TURN.findall(value or ""):
            text = text.strip()
            if text:
                turns.append({"speaker": conversation.speakers.get(speaker, speaker), "text": text})
    return turns


def _as_text(value: object) -> str:
    """A cell as text: empty for a missing value, 3 for a whole number read as 3.0."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _as_json(frame: pd.DataFrame, names: list[str]) -> list[str]:
    """Each row's named cells as a JSON object of text; a missing cell is null."""
    if not names:
        return ["{}"] * len(frame)
    columns = [[_as_text(v) or None for v in frame[name]] for name in names]
    return [json.dumps(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]


def normalize_items(source: SourceConfig, frame: pd.DataFrame) -> NormalizedItems:
    """Builds items from the rows of ``frame``, skipping rows with no id, no text or a repeat id.

    Row numbers in reasons count data rows from 1, in the order of the file.
    """
    # Row numbers of the file, before any filter: the index read_source keeps.
    rows = pd.Index(frame.index.to_numpy() + 1)
    columns = source.columns

    if columns.id is not None:
        ids = pd.Series([_as_text(v) for v in frame[columns.id]], index=rows)
    else:
        ids = pd.Series([f"{source.name}-{n}" for n in rows], index=rows)

    if source.conversation is not None:
        conversation = source.conversation
        values = frame[conversation.columns].astype(str).to_numpy().tolist()
        turns = [parse_turns(conversation, row) for row in values]
        texts = ["\n".join(f"{t['speaker']}: {t['text']}" for t in turn) for turn in turns]
    else:
        texts = [_as_text(v) for v in frame[columns.text]]
        turns = [[] for _ in texts]

    reasons = pd.Series("", index=rows)
    reasons[pd.Series(texts, index=rows) == ""] = "no text"
    reasons[ids == ""] = "no id"
    # Only rows that are otherwise usable claim an id: a first row without text does not.
    usable = reasons == ""
    repeated = usable & ids.where(usable).duplicated(keep="first")
    reasons[repeated] = "duplicate id " + ids[repeated]
    kept = (reasons == "").to_numpy()

    items = pd.DataFrame(
        {
            "item_id": ids.to_numpy(),
            "text": texts,
            "turns": turns,
            "metadata": _as_json(frame, columns.metadata),
            "labels": _as_json(frame, columns.labels),
        }
    )[kept].reset_index(drop=True)
    rejected = pd.DataFrame(
        {"row": rows[~kept], "item_id": ids[~kept].to_numpy(), "reason": reasons[~kept].to_numpy()}
    )
    return NormalizedItems(items=items, rejected=rejected)


def signature_path(items_path: Path) -> Path:
    return items_path.with_suffix(".signature")


def write_items(items: pd.DataFrame, path: Path, *, signature: str) -> None:
    """Stores items as Parquet, then the signature of the source they came from.

    Both are renamed into place when complete, the signature last: items without a signature
    are taken as stale and loaded again.
    """
    signature_path(path).unlink(missing_ok=True)
    partial = path.with_suffix(".partial")
    items.to_parquet(partial, index=False)
    partial.replace(path)
    partial_signature = signature_path(path).with_suffix(".partial-signature")
    partial_signature.write_text(signature)
    partial_signature.replace(signature_path(path))


def read_signature(items_path: Path) -> str | None:
    """The signature of the source the stored items came from; None when unknown."""
    try:
        return signature_path(items_path).read_text().strip() or None
    except OSError:
        return None


def read_labels(items: pd.DataFrame) -> list[dict[str, object]]:
    """Each item's labels as a mapping of label column to value."""
    return [json.loads(value) for value in items["labels"]]
