"""Tag and metadata keys, defined once so that jobs, sensors and the CLI agree on them."""

# Run tags
# The scorecard a run evaluates or trains; the same value as its partition key.
SCORECARD_TAG = "plexus/scorecard"
# The Dagster tag that selects a partition for a run of a partitioned job.
PARTITION_TAG = "dagster/partition"

# Metadata keys on materializations
ITEMS_PATH = "plexus/items_path"
ITEM_COUNT = "plexus/items"
REJECTED_COUNT = "plexus/rejected"
REJECTED_SAMPLE = "plexus/rejected_sample"
RESULTS_PATH = "plexus/results_path"
SUMMARY_PATH = "plexus/summary_path"
MODEL_VERSIONS = "plexus/model_versions"
