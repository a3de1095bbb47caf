"""One run per dataset URI at a time: a lease file that a second run sees at start, not at the end.

The lease (`<uri>/_unimontage/lease.json`: run id, host, pid, heartbeat) is renewed while the
run makes progress. A second run that finds a live lease stops at once with a message naming
the holder. A lease is dead when its heartbeat is older than `stale_after_s`, or at once when
its process is gone from this host (a `kill -9`ed run must not block its own re-run).

The lease is a courtesy for a fast, clear failure; the guarantee is the commit itself:
Lance refuses a commit whose read version is no longer the latest (`ConcurrentWrite`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from datagen.store import lance_io

STALE_AFTER_S = 180.0
RENEW_EVERY_S = 15.0


class DatasetBusy(RuntimeError):
    """Another live run holds the dataset's lease."""


def lease_uri(uri: str) -> str:
    return f"{lance_io.normalise_uri(uri)}/_unimontage/lease.json"


def _alive(holder: dict[str, Any], stale_after_s: float) -> bool:
    if time.time() - float(holder.get("heartbeat", 0)) > stale_after_s:
        return False
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder.get("pid", -1)), 0)
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:  # someone else's live process
            return True
    return True


class Lease:
    def __init__(self, uri: str, run_id: str, stale_after_s: float = STALE_AFTER_S):
        self.uri, self.run_id, self.stale_after_s = lease_uri(uri), run_id, stale_after_s
        self._renewed = 0.0

    def holder(self) -> dict[str, Any] | None:
        raw = lance_io.read_text(self.uri)
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:  # a torn write: nobody holds it
            return None

    def acquire(self) -> None:
        held = self.holder()
        if held and held.get("run_id") != self.run_id and _alive(held, self.stale_after_s):
            age = time.time() - float(held.get("heartbeat", 0))
            raise DatasetBusy(f"{self.uri.rsplit('/_unimontage', 1)[0]} is being written by run {held.get('run_id')} "
                              f"(host {held.get('host')}, pid {held.get('pid')}, last seen {age:.0f} s ago); "
                              "wait for it to finish, or write to another --out")
        self._write()

    def renew(self) -> None:
        if time.monotonic() - self._renewed >= RENEW_EVERY_S:
            self._write()

    def release(self) -> None:
        held = self.holder()
        if held and held.get("run_id") == self.run_id:
            lance_io.delete_file(self.uri)

    def _write(self) -> None:
        lance_io.write_text(self.uri, json.dumps({"run_id": self.run_id, "host": socket.gethostname(),
                                                  "pid": os.getpid(), "heartbeat": time.time()}))
        self._renewed = time.monotonic()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
