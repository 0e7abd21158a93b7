"""How long finished jobs are kept: an age limit and a total-size limit, oldest removed first.

Applied at start-up, after every job and on ``POST /v1/prune`` (``nstr jobs --prune``). Only
finished jobs (done, failed, cancelled) are ever removed; queued and running ones are never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_AGE_DAYS = 30.0
DEFAULT_MAX_TOTAL_GB = 20.0


@dataclass
class Retention:
    max_age_days: float = DEFAULT_MAX_AGE_DAYS
    max_total_gb: float = DEFAULT_MAX_TOTAL_GB

    def apply(self, queue: Any, max_age_days: float | None = None, max_total_gb: float | None = None) -> dict[str, Any]:
        """Remove finished jobs older than the age limit, then the oldest until the total fits."""
        age = self.max_age_days if max_age_days is None else max_age_days
        size = self.max_total_gb if max_total_gb is None else max_total_gb
        now = time.time()
        removed: list[str] = []
        finished = queue.finished()
        sizes = {j.id: queue.store.folder_bytes(j.id) for j in finished}
        total = sum(sizes.values())
        for job in finished:  # oldest first
            too_old = now - (job.finished or job.created) > age * 86400
            too_big = total > size * 2**30
            if not (too_old or too_big):
                continue
            try:
                queue.delete(job.id)
            except Exception:  # deleted or resubmitted meanwhile
                continue
            removed.append(job.id)
            total -= sizes[job.id]
        return {"removed": removed, "kept_bytes": total, "max_age_days": age, "max_total_gb": size}
