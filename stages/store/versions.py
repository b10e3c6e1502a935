"""The one table of stage versions. A version is part of every content key its stage makes: bump a stage's entry
when its code changes the bytes it produces, and its cached chunks (or files) are made again."""

from __future__ import annotations

STAGE_VERSIONS: dict[str, str] = {
    # chunk ops (stages.ops): store folder, asset and progress name
    "frames": "1",
    "upscale": "1",
    "interpolate": "1",
    "cohere": "2",  # 2: flow pass with history clamping and a misalignment-aware source test (new bytes)
    "reframe": "1",
    # whole-video steps
    "scenes": "1",
    "encode": "2",  # 2: a source's non-square pixel aspect is carried (or resampled to square pixels)
    "metrics": "5",  # 5: the summary says the pixel aspect (geometry), the deinterlacing and the source's warnings
    # production plans
    "sequence": "1",
    "edit": "1",
    "audio": "1",
    "deliver": "1",
}


def stage_version(name: str) -> str:
    """The version of stage ``name``.

    Raises:
        KeyError: ``name`` is not in the table (add it there, or give the op its own ``version``).
    """
    try:
        return STAGE_VERSIONS[name]
    except KeyError:
        raise KeyError(f"stage {name!r} has no entry in stages.store.versions.STAGE_VERSIONS; add one, or give the op "
                       "a `version` of its own") from None
