"""The interpolate op: output-frame timing plans and settings (timing), the interpolators (optical flow, blend, ffmpeg
minterpolate in interpolators; RIFE in stages.models.rife), the chunk stage (chunk), and the op with the shared
interpolator choice and frame-rate plan (op)."""
