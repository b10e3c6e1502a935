"""Dagster resources and run settings: the workspace (paths), the model store, the device, the per-run
IO manager, the Config classes, and serialized gpu-slot claims."""
