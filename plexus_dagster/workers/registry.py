"""Live workers, as each one's heartbeat in Redis.

A worker writes its record every `HEARTBEAT_SECONDS` with an expiry of `EXPIRY_SECONDS`; a
worker whose record has expired is gone, however it ended. The record is what `plexus workers
list` shows and what the run coordinator counts slots from.
"""

import json
import time
from dataclasses import asdict, dataclass, field

import redis

HEARTBEAT_SECONDS = 3.0
EXPIRY_SECONDS = 15
KEY_PREFIX = "plexus:worker:"


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    pid: int
    capabilities: list[str]
    concurrency: int
    queues: list[str] = field(default_factory=list)
    started_at: float = 0.0
    heartbeat_at: float = 0.0

    @property
    def incarnation(self) -> str:
        """Tells this run of the worker from a later one under the same name."""
        return f"{self.name}/{self.pid}/{self.started_at:.3f}"

    def can_run(self, needs: frozenset[str]) -> bool:
        return needs <= set(self.capabilities)


class WorkerRegistry:
    """Reads and writes worker records in the Redis at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def beat(self, worker: WorkerInfo) -> None:
        record = {**asdict(worker), "heartbeat_at": time.time()}
        self._redis.set(KEY_PREFIX + worker.name, json.dumps(record), ex=EXPIRY_SECONDS)

    def remove(self, name: str) -> None:
        self._redis.delete(KEY_PREFIX + name)

    def get(self, name: str) -> WorkerInfo | None:
        raw = self._redis.get(KEY_PREFIX + name)
        return WorkerInfo(**json.loads(raw)) if raw else None

    def live(self) -> list[WorkerInfo]:
        keys = sorted(self._redis.scan_iter(match=KEY_PREFIX + "*", count=500))
        if not keys:
            return []
        records = self._redis.mget(keys)
        return [WorkerInfo(**json.loads(raw)) for raw in records if raw]
