"""Scorecards, evaluations and tasks for scoring conversations, built on Dagster."""
