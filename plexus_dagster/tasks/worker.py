"""The process a locally launched task runs in: ``python -m plexus_dagster.tasks.worker SPEC``."""

import json
import sys
from pathlib import Path

from plexus_dagster.tasks.launch import RunRequest, worker_tags


def main(spec_path: str) -> int:
    from plexus_dagster.definitions import defs
    from plexus_dagster.instance import project_instance

    spec = json.loads(Path(spec_path).read_text())
    request = RunRequest(**{**spec, "tags": {**spec["tags"], **worker_tags()}})
    with project_instance() as instance:
        succeeded = request.execute(defs, instance)
    Path(spec_path).unlink(missing_ok=True)
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
