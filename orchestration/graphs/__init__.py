"""Dagster asset graphs: enhance (the chain of chunk ops and its asset factory), production, reframe
and benchmark; pieces they share; transient-only retries; the chunk store's budget when a job ends."""
