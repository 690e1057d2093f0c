from pathlib import Path

import pytest

from plexus_dagster.yaml_lines import YamlFileError, line_of, load_yaml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    return path


def test_yes_and_no_stay_strings_while_true_is_a_boolean(tmp_path: Path) -> None:
    document = load_yaml(write(tmp_path, "classes: [yes, no, on, off]\nflag: true\n"))

    assert document["classes"] == ["yes", "no", "on", "off"]
    assert document["flag"] is True


def test_line_of_follows_a_pydantic_location_into_lists(tmp_path: Path) -> None:
    document = load_yaml(
        write(tmp_path, "name: x\nsections:\n  - name: a\n    scores:\n      - key: k\n")
    )

    assert line_of(document, ("sections", 0, "scores", 0, "key")) == 5
    assert line_of(document, ("sections", 0, "name")) == 3
    # A missing key is reported at the mapping that lacks it.
    assert line_of(document, ("sections", 0, "scores", 0, "question")) == 5


def test_duplicate_key_is_an_error_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(YamlFileError) as raised:
        load_yaml(write(tmp_path, "name: a\nkey: b\nname: c\n"))

    assert raised.value.line == 3
    assert "duplicate key 'name'" in str(raised.value)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\nsections: [\n  - b: c\n")

    with pytest.raises(YamlFileError) as raised:
        load_yaml(path)

    assert str(raised.value).startswith(f"{path}:")
    assert raised.value.line is not None


def test_boolean_and_null_keys_are_spelled_as_in_a_csv_cell(tmp_path: Path) -> None:
    document = load_yaml(write(tmp_path, "map: {true: yes, 1: no, null: x}\n"))

    assert document["map"] == {"true": "yes", "1": "no", "null": "x"}


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))

    with pytest.raises(YamlFileError, match=r"not UTF-8 text \(byte 9\)"):
        load_yaml(path)


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(YamlFileError, match="nested too deeply"):
        load_yaml(write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n"))
