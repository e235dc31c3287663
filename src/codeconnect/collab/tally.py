"""What the live core counts on its hot path: plain integers, read by whoever exports them (``metrics.py``).

A document update is the core's most frequent event, handled in about 10 microseconds. A Prometheus counter's
``inc()`` takes a lock (and, in multiprocess mode, writes a memory-mapped file): 0.2 microseconds per call in one
process, 0.7 with several, measured, and an update needs two of them. An attribute increment costs 0.03, and
the core stays ignorant of how its counts are exported. The exporter moves the growth since its last look into
its counters (see ``metrics.publish_live_counts``).

One tally per process: the core runs on one event loop thread, so nothing else writes these between the
read and the write of an increment.
"""

from __future__ import annotations


class LiveTally:
    """Running totals since the process started; they only grow."""

    __slots__ = ("client_updates", "server_updates", "cluster_updates", "relayed_updates")

    def __init__(self) -> None:
        self.client_updates = 0  # applied from a live connection (an update or a sync step 2 that added something)
        self.server_updates = 0  # the server's own edits: REST writes, run results, clearing the output
        self.cluster_updates = 0  # accepted by another process and applied here (see cluster.py)
        self.relayed_updates = 0  # update messages handed to live connections (one per update per receiver)


TALLY = LiveTally()
