from plexus_dagster.scorecards.classifiers import KeywordClassifier, KeywordParameters


def keyword(*patterns: str) -> KeywordClassifier:
    parameters = {"rules": [{"class": "yes", "patterns": list(patterns)}], "default": "no"}
    return KeywordClassifier(KeywordParameters.model_validate(parameters))


def test_rules_are_tried_in_order_and_explain_the_match() -> None:
    parameters = KeywordParameters.model_validate(
        {
            "rules": [
                {"class": "close", "patterns": [r"\bclose\b"]},
                {"class": "refund", "patterns": [r"refund", r"money back"]},
            ],
            "default": "other",
        }
    )

    predicted = KeywordClassifier(parameters).predict(
        ["Close my account and refund me", "I want my MONEY BACK", "hello"]
    )

    assert predicted.values == ["close", "refund", "other"]
    assert predicted.explanations == ["matched 'Close'", "matched 'MONEY BACK'", "no rule matched"]


def test_each_pattern_keeps_its_own_groups_and_flags() -> None:
    classifier = keyword(r"(x)y", r"\b(\w+) \1\b", r"(?x) late \s+ again")

    assert classifier.predict(["the the plane", "late again", "fine"]).values == [
        "yes",
        "yes",
        "no",
    ]
