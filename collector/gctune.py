"""Cyclic-GC settings for the serving process and the plan workers.

Each request allocates thousands of short-lived, acyclic objects (freed by reference
counting), and the default thresholds (700, 10, 10) then run a collection every few hundred
records and a full one, walking every long-lived object (exposition series, caches), every few
thousand: about a quarter of the CPU per record in bench/ (docs/performance.md). Cycles are
rare here, so collecting less often costs only a little memory.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Freeze what start-up built (config, loaded state) out of the collector's sight, and
    collect less often; see GC_THRESHOLDS."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
