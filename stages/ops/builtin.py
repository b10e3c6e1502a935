"""Importing this module registers the project's own chunk ops (stages.ops.registry)."""

from stages.ops.cohere import CohereOp
from stages.ops.frames import FramesOp
from stages.ops.interpolate import InterpolateOp
from stages.ops.reframe import ReframeOp
from stages.ops.upscale import UpscaleOp

BUILTIN_OPS = (FramesOp, UpscaleOp, InterpolateOp, CohereOp, ReframeOp)
