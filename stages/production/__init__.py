"""Production plans: image sequences (EXR, DPX, PNG...), the edit (cuts, crossfades, canvas),
mastering deliverables, thumbnails and contact sheets, and the plan file itself."""
