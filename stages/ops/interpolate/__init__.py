"""The interpolate op: output-frame timing plans, the interpolators (optical flow, blend, ffmpeg
minterpolate; RIFE in stages.models.rife), and the shared interpolator choice and frame-rate plan."""
