"""Reading the savings log a test's router or proxy writes."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from resgate_router import SavingsRecord

#: the fields of every record, whatever the entry point and outcome
RECORD_FIELDS = {f.name for f in dataclasses.fields(SavingsRecord)}


def read_records(log: Path, at_least: int) -> list[dict]:
    """The savings log's records once it holds ``at_least`` (its writer thread runs behind), or what
    it holds after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        if len(records) >= at_least or time.monotonic() >= deadline:
            return records
        time.sleep(0.05)
