"""COPY batches of a plan, generated in a child process when the plan is large.

Generating rows is Python's work and loading them is the server's; in one process the
two would take turns (even a thread would wait on the GIL for every write). A child
process (`python -m coursedesk.db.datagen.producer`) generates the next batch while
the parent streams the current one, so on two cores both run at once. Small plans are
generated in place, as starting a process would cost more than it saves.
"""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from coursedesk.db.datagen.copydata import CopyBatch, CopyFormatter
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.datagen.simulation import CHUNK_USERS, generate_chunks
from coursedesk.errors import CoursedeskError


class GenerationFailed(CoursedeskError):
    """The data generator stopped before it had generated every batch."""


def copy_batches(plan: GenerationPlan, first_ids: dict[str, int]) -> Iterator[CopyBatch]:
    """The plan's rows as COPY batches, in order, with ids counting up from `first_ids`."""
    if plan.users <= CHUNK_USERS:
        return _batches_in_place(plan, first_ids)
    return _batches_from_child(plan, first_ids)


def _batches_in_place(plan: GenerationPlan, first_ids: dict[str, int]) -> Iterator[CopyBatch]:
    formatter = CopyFormatter(first_ids)
    for chunk in generate_chunks(plan):
        yield formatter.batch(chunk)


def _batches_from_child(plan: GenerationPlan, first_ids: dict[str, int]) -> Iterator[CopyBatch]:
    job = {
        "users": plan.users,
        "seed": plan.seed,
        "anchor": plan.anchor.isoformat(),
        "first_ids": first_ids,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", __name__, json.dumps(job)], stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        while True:
            try:
                item = pickle.load(child.stdout)
            except EOFError:
                raise GenerationFailed("the data generator process ended unexpectedly") from None
            if item is None:
                return
            if isinstance(item, str):
                raise GenerationFailed(f"data generation failed: {item}")
            yield item
    finally:
        if child.poll() is None:
            child.terminate()
        child.wait()
        child.stdout.close()


def _generate_into(out: IO[bytes], job: dict[str, object]) -> None:
    """The child's work: each batch pickled onto `out`, then None (or the error's text).

    The stream is read by the parent that started this process, and by nothing else.
    """
    try:
        plan = GenerationPlan(
            users=int(str(job["users"])),
            seed=int(str(job["seed"])),
            anchor=datetime.fromisoformat(str(job["anchor"])),
        )
        first_ids = job["first_ids"]
        assert isinstance(first_ids, dict)
        formatter = CopyFormatter({str(table): int(first) for table, first in first_ids.items()})
        for chunk in generate_chunks(plan):
            pickle.dump(formatter.batch(chunk), out, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # reported to the parent, which raises it there
        pickle.dump(f"{type(exc).__name__}: {exc}", out)
    else:
        pickle.dump(None, out)
    out.flush()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group; the parent handles it and ends this child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _generate_into(sys.stdout.buffer, json.loads(sys.argv[1]))
