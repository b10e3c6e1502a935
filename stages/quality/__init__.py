"""Measuring results: metrics (flicker, E_warp, PSNR, SSIM, VMAF, grades), the enhance report, the
quality benchmark suite and generated sample clips."""
