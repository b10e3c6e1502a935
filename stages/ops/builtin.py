"""Importing this module registers the project's own chunk ops (stages.ops.registry)."""

from stages.ops.cohere.op import CohereOp
from stages.ops.edit import EditOp
from stages.ops.frames import FramesOp
from stages.ops.interpolate.op import InterpolateOp
from stages.ops.reframe.op import ReframeOp
from stages.ops.upscale.op import UpscaleOp

__all__ = ["CohereOp", "EditOp", "FramesOp", "InterpolateOp", "ReframeOp", "UpscaleOp"]
