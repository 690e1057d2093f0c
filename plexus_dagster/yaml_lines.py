"""YAML loading that remembers where each value came from.

Every error about a source or a scorecard names the file and the line, so the loader keeps the
line of every mapping and every key. ``yes`` and ``no`` stay strings: scorecards use them as class
names, and YAML 1.1 would otherwise turn them into booleans.
"""

import re
from pathlib import Path
from typing import Any

import yaml


class LineDict(dict[str, Any]):
    """A mapping that knows its own line and the line of each of its keys."""

    line: int
    key_lines: dict[str, int]


class LineList(list[Any]):
    """A sequence that knows its own line and the line of each element."""

    line: int
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


# Only true/false are booleans; yes/no/on/off are the class names users write.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = _key_text(loader.construct_object(key_node, deep=True))
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _key_text(key: object) -> str:
    """Mapping keys as a CSV cell would spell them: true, not True; 1, not 1.0."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    sequence = LineList(loader.construct_object(child, deep=True) for child in node.value)
    sequence.line = node.start_mark.line + 1
    sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
    return sequence


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class YamlFileError(ValueError):
    """A YAML file that cannot be read, with the file and line of the problem."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def load_yaml(path: Path) -> Any:
    """Parses ``path``, keeping lines; syntax errors become a `YamlFileError` with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise YamlFileError(path, None, f"cannot read the file ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise YamlFileError(
            path, None, f"not UTF-8 text (byte {e.start}); save the file as UTF-8"
        ) from e
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except RecursionError as e:
        raise YamlFileError(path, None, "invalid YAML: nested too deeply") from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = e.problem or str(e)
        raise YamlFileError(path, line, f"invalid YAML: {problem}") from e
    except yaml.YAMLError as e:
        raise YamlFileError(path, None, f"invalid YAML: {e}") from e


def line_of(document: Any, location: tuple[str | int, ...]) -> int | None:
    """The line of the deepest part of ``location`` found in ``document``.

    ``location`` is a pydantic error location such as ``("sections", 0, "scores", 2, "key")``.
    Where the location names a key that is missing, the line of the mapping that lacks it is the
    best answer.
    """
    node = document
    line = getattr(document, "line", None)
    for part in location:
        if isinstance(node, LineDict) and isinstance(part, str):
            if part not in node:
                return node.line
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line
