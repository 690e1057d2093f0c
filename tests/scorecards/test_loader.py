import subprocess
import sys
from pathlib import Path

import pytest

from plexus_dagster.scorecards.loader import (
    ScorecardError,
    catalog_scorecards,
    load_scorecard,
    load_scorecards,
    scorecard_files,
)
from plexus_dagster.settings import PROJECT_ROOT

VALID = """\
name: Test card
key: test_card
source: banking77_test
train_source: banking77_train
sections:
  - name: Main
    scores:
      - name: Close account
        key: close_account
        question: Did the customer ask to close the account?
        class: keyword
        parameters:
          rules:
            - class: yes
              patterns: ['close .*account']
          default: no
        classes: [yes, no]
        label: {field: category, map: {terminate_account: yes}, default: no}
      - name: Refund
        key: refund
        question: Did the customer ask for a refund?
        class: tfidf_logreg
        classes: [yes, no]
        label: {field: category, map: {request_refund: yes}, default: no}
        depends_on: {close_account: no}
"""
SOURCES = {"banking77_test": ["category"], "banking77_train": ["category"]}


def problems(tmp_path: Path, text: str) -> list[tuple[int | None, str]]:
    path = tmp_path / "card.yaml"
    path.write_text(text)
    with pytest.raises(ScorecardError) as raised:
        load_scorecard(path, known_sources=SOURCES)
    assert all(error.path == path for error in raised.value.errors)
    return [(error.line, error.message) for error in raised.value.errors]


def test_valid_scorecard_loads(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(VALID)

    scorecard = load_scorecard(path, known_sources=SOURCES)

    assert [s.key for s in scorecard.config.scores] == ["close_account", "refund"]
    assert scorecard.config.scores[1].depends_on == {"close_account": "no"}


def test_project_scorecards_are_valid() -> None:
    files = scorecard_files(PROJECT_ROOT / "scorecards")

    scorecards = load_scorecards(files, known_sources={**SOURCES, "twacs": ["tag"]})

    assert set(scorecards) == {"banking77", "banking77_gpu", "twacs"}
    yes_no = [s for s in scorecards["banking77"].config.scores if s.classes == ["yes", "no"]]
    assert len(yes_no) >= 5


def test_unknown_class_names_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID.replace("class: tfidf_logreg", "class: magic"))

    assert found == [(22, "unknown class 'magic'; known: embedding, keyword, tfidf_logreg")]


def test_missing_field_names_the_score(tmp_path: Path) -> None:
    text = VALID.replace("        question: Did the customer ask for a refund?\n", "")

    found = problems(tmp_path, text)

    assert found == [(19, "missing field 'sections.0.scores.1.question'")]


def test_bad_regex_names_the_pattern_line(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID.replace("'close .*account'", "'close (account'"))

    assert len(found) == 1
    line, message = found[0]
    assert line == 15
    assert "invalid regular expression 'close (account'" in message


def test_dependency_cycle_is_refused(tmp_path: Path) -> None:
    text = VALID.replace(
        "        classes: [yes, no]\n        label: {field: category, map: {terminate",
        "        depends_on: {refund: yes}\n        classes: [yes, no]\n"
        "        label: {field: category, map: {terminate",
    )

    found = problems(tmp_path, text)

    assert len(found) == 1
    assert found[0][0] == 17  # the depends_on of the first score in the cycle
    assert "depends_on forms a cycle" in found[0][1]
    assert "refund" in found[0][1]
    assert "close_account" in found[0][1]


def test_unknown_score_in_depends_on(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID.replace("{close_account: no}", "{close_acount: no}"))

    assert found == [(25, "depends_on names unknown score 'close_acount'")]


def test_depends_on_an_answer_the_score_never_gives(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID.replace("{close_account: no}", "{close_account: maybe}"))

    assert found == [(25, "score 'close_account' never answers 'maybe'")]


def test_duplicate_score_key(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID.replace("key: refund", "key: close_account"))

    assert found == [(20, "duplicate score key 'close_account'; keys must be unique")]


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID.replace("key: test_card\n", "key: test_card\nname: x\n"))

    assert found == [(3, "invalid YAML: duplicate key 'name'")]


def test_unknown_source_and_trained_score_without_train_source(tmp_path: Path) -> None:
    text = VALID.replace("source: banking77_test", "source: nowhere").replace(
        "train_source: banking77_train\n", ""
    )

    found = problems(tmp_path, text)

    assert (3, "unknown source 'nowhere'; declared sources: banking77_test, banking77_train") in (
        found
    )
    assert any("has no train_source" in message for _, message in found)


def test_duplicate_scorecard_keys_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)

    with pytest.raises(ScorecardError, match="already used by"):
        load_scorecards(scorecard_files(tmp_path), known_sources=SOURCES)


def test_cli_validate_exits_non_zero_with_file_and_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("class: tfidf_logreg", "class: magic"))
    good = tmp_path / "good.yaml"
    good.write_text(VALID.replace("key: test_card", "key: other_card"))

    failed = subprocess.run(
        [sys.executable, "-m", "plexus_dagster.cli", "scorecards", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    passed = subprocess.run(
        [sys.executable, "-m", "plexus_dagster.cli", "scorecards", "validate", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert failed.returncode == 1
    assert f"{bad}:22: unknown class 'magic'" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    assert passed.returncode == 0, passed.stderr
    assert "is valid" in passed.stdout


def test_a_label_field_the_source_does_not_have_is_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path, VALID.replace("{field: category, map: {request", "{field: intent, map: {request")
    )

    assert found == [
        (
            24,
            "score 'refund': label field 'intent' is not a label of source 'banking77_test' "
            "(its labels: category)",
        ),
        (
            24,
            "score 'refund': label field 'intent' is not a label of source 'banking77_train' "
            "(its labels: category)",
        ),
    ]


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    assert problems(tmp_path, "") == [(None, "the file is empty")]


def test_one_bad_file_does_not_hide_the_valid_ones(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(VALID)
    (tmp_path / "bad.yaml").write_text(
        VALID.replace("key: test_card", "key: bad_card").replace("class: keyword", "class: x")
    )

    catalog = catalog_scorecards(scorecard_files(tmp_path), known_sources=SOURCES)

    assert list(catalog.scorecards) == ["test_card"]
    assert [e.path.name for e in catalog.errors] == ["bad.yaml"]
    with pytest.raises(ScorecardError, match="unknown class 'x'"):
        catalog.find("bad_card")
    with pytest.raises(KeyError, match="known scorecards: test_card"):
        catalog.find("nothing")


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "card.yaml").write_text(VALID)

    files = scorecard_files(tmp_path, tmp_path / "card.yaml")

    assert files == [tmp_path / "card.yaml"]


def test_reserved_and_repeated_classes_are_refused(tmp_path: Path) -> None:
    text = VALID.replace(
        "        classes: [yes, no]\n        label: {field: category, map: {request",
        "        classes: [yes, SKIPPED, yes]\n        label: {field: category, map: {request",
    )

    messages = [message for _, message in problems(tmp_path, text)]

    assert "class 'SKIPPED' is reserved for scores that did not answer; rename it" in messages
    assert "class 'yes' is listed twice" in messages


def test_depends_on_with_no_answer_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID.replace("{close_account: no}", "{close_account: []}"))

    assert found == [(25, "depends_on 'close_account' lists no answer, so the score never runs")]
