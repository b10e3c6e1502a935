"""Production plans: image sequences (EXR, DPX, PNG...) and the frame rates in their headers, the edit (cuts,
crossfades, canvas), mastering deliverables, thumbnails and contact sheets, the plan file in both formats (today's
and the carrier spec's), the carrier drive-root conventions and report, and the dry-run checks."""
