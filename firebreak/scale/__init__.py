"""Scaling out: work spread over queues, workers and clusters.

`queue` is the durable event queue (Redis Streams behind the `EventQueue` protocol); `workers`
the stateless hashers and read-only matchers of the upload path, exactly once in effect through
the ledger in `firebreak.store.scale`; `sweep` matches stored upload hashes against later banks.
"""
