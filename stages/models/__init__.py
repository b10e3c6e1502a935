"""Models: the catalog of known weights and the code that finds, fetches, converts and loads them.

- ``catalog``: ids, architectures, scales, official URLs with size and sha256, licences, tags.
- ``store``: ``ModelStore`` resolves an id to a weights file (explicit path, user cache, ``VUP_MODELS_DIR``,
  an installed package, download) and loads it with spandrel; ``store_types`` (the values it returns),
  ``store_sources`` (resolution and file checks) and ``store_inventory`` (status, verify, remove) hold its parts.
- ``ncnn``: converts Real-ESRGAN ncnn .param/.bin files to PyTorch state dicts.
- ``download``: resumable, verified downloads.

Submodules are imported explicitly (``from stages.models.store import ModelStore``) so that reading the
catalog does not import torch.
"""
