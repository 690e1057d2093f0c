"""Normalizing a source's rows into items: id, text, turns, metadata, labels."""

import json
import re
from dataclasses import dataclass

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
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip()


def normalize_items(source: SourceConfig, frame: pd.DataFrame) -> NormalizedItems:
    """Builds items from the rows of ``frame``, skipping rows with no id, no text or a repeat id.

    Row numbers in reasons count data rows from 1, in the order of the file.
    """
    rows = pd.RangeIndex(1, len(frame) + 1)
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
    repeated = ids.duplicated(keep="first") & (ids != "")
    reasons[repeated & (reasons == "")] = "duplicate id " + ids[repeated]
    kept = (reasons == "").to_numpy()

    def as_json(names: list[str]) -> list[str]:
        records = frame[names].to_dict(orient="records") if names else [{}] * len(frame)
        return [json.dumps(r, default=str) for r in records]

    items = pd.DataFrame(
        {
            "item_id": ids.to_numpy(),
            "text": texts,
            "turns": turns,
            "metadata": as_json(columns.metadata),
            "labels": as_json(columns.labels),
        }
    )[kept].reset_index(drop=True)
    rejected = pd.DataFrame(
        {"row": rows[~kept], "item_id": ids[~kept].to_numpy(), "reason": reasons[~kept].to_numpy()}
    )
    return NormalizedItems(items=items, rejected=rejected)


def write_items(items: pd.DataFrame, path: str) -> None:
    """Stores items as Parquet; turns keep their speaker and text."""
    items.to_parquet(path, index=False)


def read_labels(items: pd.DataFrame) -> list[dict[str, object]]:
    """Each item's labels as a mapping of label column to value."""
    return [json.loads(value) for value in items["labels"]]
