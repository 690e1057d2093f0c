"""The jobs users launch: load items, train, evaluate and score with a scorecard."""

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

prediction_job = dg.define_asset_job(
    "prediction_job",
    selection=dg.AssetSelection.assets("predictions"),
    description=(
        "Scores the items of a source with one scorecard (the partition): the scorecard's source "
        "unless op config names another. Items already scored with the current models are left "
        "as they are."
    ),
)
