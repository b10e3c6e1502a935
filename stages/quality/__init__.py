"""Measuring results: metrics (flicker, E_warp, PSNR, SSIM, VMAF), grades, the video-level summary, plot and report
files (summary), the enhance report (report), the quality benchmark (its cases in benchmark_cases, the suite in
benchmark, targets and report in benchmark_report) and generated sample clips."""
