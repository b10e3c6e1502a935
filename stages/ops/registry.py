"""Chunk ops by name, in the spirit of spandrel's architecture registry: one name, one op; a second op under a
name already taken is refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stages.ops.contract import ChunkOp

_OPS: dict[str, type[ChunkOp]] = {}


def register_op(op: type[ChunkOp]) -> type[ChunkOp]:
    """Register ``op`` under its ``name`` (usable as a class decorator).

    Raises:
        ValueError: the op has no name, or another op is registered under it.
    """
    name = getattr(op, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"op {op.__name__} needs a `name` that is a Python identifier, got {name!r}")
    if name in _OPS and _OPS[name] is not op:
        raise ValueError(f"op name {name!r} is taken by {_OPS[name].__module__}.{_OPS[name].__name__}; "
                         f"choose another name for {op.__module__}.{op.__name__}")
    _OPS[name] = op
    return op


def unregister_op(name: str) -> None:
    _OPS.pop(name, None)


@contextmanager
def registered(op: type[ChunkOp]) -> Iterator[type[ChunkOp]]:
    """Register ``op`` for the duration of the block (tests, plug-ins tried once)."""
    register_op(op)
    try:
        yield op
    finally:
        unregister_op(op.name)


def get_op(name: str) -> type[ChunkOp]:
    """The op registered as ``name``.

    Raises:
        KeyError: no such op (the message lists the registered ones).
    """
    try:
        return _OPS[name]
    except KeyError:
        raise KeyError(f"no chunk op named {name!r}; registered: {', '.join(sorted(_OPS)) or 'none'}") from None


def registered_ops() -> dict[str, type[ChunkOp]]:
    """Every registered op by name (the built-in ones once stages.ops.builtin is imported)."""
    return dict(_OPS)
