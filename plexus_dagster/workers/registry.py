"""Live workers, as each one's heartbeat in Redis.

A worker writes its record every `HEARTBEAT_SECONDS` with an expiry of `EXPIRY_SECONDS`; a
worker whose record has expired is gone, however it ended. The record is what `plexus workers
list` shows and what the run coordinator counts slots from.
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field

import redis

HEARTBEAT_SECONDS = 3.0
EXPIRY_SECONDS = 15
KEY_PREFIX = "plexus:worker:"
# How long a worker must stay missing before its runs are judged lost: a record gone for a
# moment (Redis restarted or flushed) is written again at the next heartbeat.
LOSS_GRACE_SECONDS = 8.0


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

    def claim(self, worker: WorkerInfo) -> WorkerInfo | None:
        """Registers a starting worker under its name, unless a live one has it; returns that
        one. A record left by a worker of this host whose process is gone is taken over."""
        record = json.dumps({**asdict(worker), "heartbeat_at": time.time()})
        key = KEY_PREFIX + worker.name
        if self._redis.set(key, record, ex=EXPIRY_SECONDS, nx=True):
            return None
        holder = self.get(worker.name)
        if holder is None or (holder.host == worker.host and not _alive(holder.pid)):
            self._redis.set(key, record, ex=EXPIRY_SECONDS)
            return None
        return holder

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


class Absences:
    """Judges a worker lost only once it has been missing for `LOSS_GRACE_SECONDS`."""

    def __init__(self, grace: float = LOSS_GRACE_SECONDS) -> None:
        self.grace = grace
        self._since: dict[str, float] = {}

    def lost(self, key: str, missing: bool) -> bool:
        """Whether the worker behind ``key`` (a run id) is lost, given whether it is missing
        now."""
        if not missing:
            self._since.pop(key, None)
            return False
        since = self._since.setdefault(key, time.monotonic())
        if time.monotonic() - since < self.grace:
            return False
        del self._since[key]
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, run by another user
        return True
    return True
