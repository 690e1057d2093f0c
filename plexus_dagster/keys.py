"""Tag and metadata keys, defined once so that jobs, sensors and the CLI agree on them."""

# Run tags
# The scorecard a run evaluates or trains; the same value as its partition key.
SCORECARD_TAG = "plexus/scorecard"
# The Dagster tag that selects a partition for a run of a partitioned job.
PARTITION_TAG = "dagster/partition"

# The machine and process id of the local worker running a task, for cancelling it.
HOST_TAG = "plexus/host"
PID_TAG = "plexus/pid"

# The source a run loads, and the SHA-256 of the file that started it.
SOURCE_TAG = "plexus/source"
SOURCE_SHA256_TAG = "plexus/source_sha256"

# Worker deployment: what a run needs of its worker (comma-separated capabilities), why it
# waits in the queue while no live worker can take it, and which worker took it.
NEEDS_TAG = "plexus/needs"
WAITING_TAG = "plexus/waiting"
WORKER_TAG = "plexus/worker"
# Which run of that worker: one restarted under the same name has lost the runs of the last.
WORKER_ID_TAG = "plexus/worker-id"
# The worker (its WORKER_ID_TAG value) the run launcher sent the run to, before it took it.
ASSIGNED_TAG = "plexus/assigned"

# Live progress of a run, shown in the UI's runs list.
# The stage running now, as "name (n/N)".
STAGE_TAG = "plexus/stage"
# Percent of the current stage done.
PERCENT_TAG = "plexus/percent"
# When the task is expected to end, UTC, ISO 8601 to the minute.
ETA_TAG = "plexus/eta"

# Marks a log message that carries a progress snapshot as JSON after it.
PROGRESS_MARK = "plexus-progress:"

# Metadata keys on materializations
ITEMS_PATH = "plexus/items_path"
ITEM_COUNT = "plexus/items"
REJECTED_COUNT = "plexus/rejected"
REJECTED_SAMPLE = "plexus/rejected_sample"
RESULTS_PATH = "plexus/results_path"
SUMMARY_PATH = "plexus/summary_path"
MODEL_VERSIONS = "plexus/model_versions"

# Metadata keys of predictions
# The source whose items were scored.
SOURCE = "plexus/source"
# Items scored for the first time, scored again (out of date), left as they were, and failed.
NEW_ITEMS = "plexus/new_items"
RESCORED_ITEMS = "plexus/rescored_items"
ALREADY_SCORED = "plexus/already_scored"
FAILED_ITEMS = "plexus/failed_items"
