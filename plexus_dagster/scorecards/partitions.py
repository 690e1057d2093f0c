"""Scorecards as dynamic partitions: one partition per scorecard key."""

import dagster as dg

scorecard_partitions = dg.DynamicPartitionsDefinition(name="scorecards")


def register_scorecards(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Adds the partitions of scorecards not yet registered; returns the keys it added."""
    known = set(instance.get_dynamic_partitions(scorecard_partitions.name or "scorecards"))
    added = [key for key in keys if key not in known]
    if added:
        instance.add_dynamic_partitions(scorecard_partitions.name or "scorecards", added)
    return added
