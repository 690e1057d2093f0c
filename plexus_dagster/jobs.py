"""The jobs users launch: load items, train a scorecard, evaluate a scorecard."""

import dagster as dg

items_job = dg.define_asset_job(
    "items_job",
    selection=dg.AssetSelection.groups("sources"),
    description="Loads every source and normalizes its items.",
)

train_job = dg.define_asset_job(
    "train_job",
    selection=dg.AssetSelection.assets("trained_models"),
    description="Trains the trained scores of one scorecard (the partition) on its train source.",
)

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets("evaluation_results"),
    description="Evaluates one scorecard (the partition) against the human labels of its source.",
)
