"""Theoretical peak FLOP/s of this machine's CPU, with how it was derived, and an empirical matmul ceiling.

    peak = cores x clock x FMA units per core x fp32 lanes per vector x 2 FLOP per FMA   (fp32)
    bf16 = the same x 2 where the CPU has AVX512-BF16 (``vdpbf16ps``: two bf16 products per fp32 lane)
    AMX  = cores x clock x 1024 bf16 multiply-adds per cycle (one TMUL tile op) x 2   (only with ``amx_bf16``)

Every input says where it came from (``derivation`` / ``notes``): cores from the affinity mask, the clock from
cpufreq's ``cpuinfo_max_freq`` when the kernel exposes it, else ``cpu MHz`` in ``/proc/cpuinfo`` (under a VM that
is the nominal TSC clock, not the boost clock, so the peak may be understated), the vector width from the CPU
flags. The number of FMA units per core is an assumption (2 on AVX2/AVX-512 server cores) and says so.
On machines without ``/proc/cpuinfo`` (macOS) or without a known clock the peaks are None, never guessed.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["CpuPeak", "MatmulCeiling", "cpu_peak", "flags_summary", "measure_matmul"]

_CPUINFO = Path("/proc/cpuinfo")
_CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
_AMX_BF16_MACS_PER_CYCLE = 1024  # one AMX TMUL per core: 16x32 bf16 times 32x16 bf16 per cycle (Intel's figure)
_SUMMARY_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                  "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile", "asimd", "sve",
                  "bf16", "hypervisor")


@dataclass(frozen=True)
class CpuPeak:
    """Theoretical peak of the CPU this process may run on.

    ``peak_bf16_gflops`` is None where the CPU has no native bf16 (bf16 is then emulated and slower than fp32);
    ``peak_amx_bf16_gflops`` is None without AMX. All peaks are None when the clock is unknown.
    """

    cpu_name: str
    arch: str
    cores: int
    cores_source: str
    clock_ghz: float | None
    clock_source: str
    vector_bits: int
    fp32_lanes: int
    fma_units: int
    fma_source: str
    bf16_instruction: str | None
    bf16_factor: int
    amx_bf16: bool
    peak_fp32_gflops: float | None
    peak_bf16_gflops: float | None
    peak_amx_bf16_gflops: float | None
    derivation_fp32: str
    derivation_bf16: str
    derivation_amx: str | None
    flags: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def derivation(self) -> str:
        """All the peak derivations, one per line."""
        lines = [f"fp32: {self.derivation_fp32}", f"bf16: {self.derivation_bf16}"]
        if self.derivation_amx:
            lines.append(f"AMX bf16: {self.derivation_amx}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["derivation"] = self.derivation
        data["flags"] = list(self.flags)
        data["notes"] = list(self.notes)
        return data


def _read_cpuinfo() -> str | None:
    try:
        return _CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _cpuinfo_fields(text: str, key: str) -> list[str]:
    values = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            values.append(value.strip())
    return values


def _flags_from(text: str | None) -> set[str]:
    if not text:
        return set()
    for key in ("flags", "Features"):  # x86 / ARM Linux
        values = _cpuinfo_fields(text, key)
        if values:
            return set(values[0].split())
    return set()


def _cpu_name_from(text: str | None) -> str:
    if text:
        for key in ("model name", "Model", "Hardware", "cpu model"):
            values = _cpuinfo_fields(text, key)
            if values and values[0]:
                return values[0]
    return platform.processor() or platform.machine() or "unknown CPU"


def _cores() -> tuple[int, str]:
    try:
        return len(os.sched_getaffinity(0)), "os.sched_getaffinity (CPUs this process may run on)"
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1, "os.cpu_count (logical CPUs)"


def _clock(text: str | None, flags: set[str]) -> tuple[float | None, str]:
    """Clock in GHz and a sentence saying where it came from."""
    try:
        khz = int(_CPUFREQ_MAX.read_text(encoding="ascii").strip())
        if khz > 0:
            return khz / 1e6, f"{_CPUFREQ_MAX} ({khz} kHz, the highest clock the kernel reports, boost included)"
    except (OSError, ValueError):
        pass
    if text:
        mhz = []
        for value in _cpuinfo_fields(text, "cpu MHz"):
            try:
                mhz.append(float(value))
            except ValueError:
                continue
        if mhz:
            source = f"/proc/cpuinfo 'cpu MHz' ({max(mhz):.3f} MHz; no cpufreq driver exposes a maximum clock)"
            if "hypervisor" in flags:
                source += ("; under a VM this is the nominal TSC clock, not the boost clock the core may reach, "
                           "so the real peak may be higher")
            return max(mhz) / 1000, source
    return None, "unknown (no cpufreq maximum and no 'cpu MHz' in /proc/cpuinfo); peaks are not computed"


def _vector(arch: str, flags: set[str]) -> tuple[int, str]:
    if arch in ("x86_64", "amd64", "i386", "i686"):
        if "avx512f" in flags:
            return 512, "avx512f"
        if "avx2" in flags or "fma" in flags:
            return 256, "avx2/fma"
        return 128, "SSE (no avx2/fma flag)"
    if arch in ("aarch64", "arm64"):
        note = "NEON (asimd)" if "asimd" in flags or not flags else "assumed NEON"
        if "sve" in flags:
            note += "; SVE present but its width is not read, 128 bit assumed"
        return 128, note
    return 128, f"unknown architecture {arch}: 128 bit assumed"


def _fma_units(arch: str, flags: set[str], text: str | None, vector_bits: int) -> tuple[int, str]:
    """FMA operations of ``vector_bits`` width a core can start per cycle, and the assumption behind it."""
    family = None
    if text:
        values = _cpuinfo_fields(text, "cpu family")
        if values and values[0].isdigit():
            family = int(values[0])
    vendor = (_cpuinfo_fields(text, "vendor_id") or [""])[0] if text else ""
    if arch in ("x86_64", "amd64") and vector_bits == 512 and vendor == "AuthenticAMD" and family == 25:
        return 1, ("1 (assumed: Zen 4, family 25, runs a 512-bit FMA as two halves on its two 256-bit FMA pipes, "
                   "so one 512-bit FMA per cycle)")
    if arch in ("x86_64", "amd64") and vector_bits >= 256:
        return 2, ("2 (assumed: two FMA pipes per core on AVX2/AVX-512 server cores, e.g. Zen 5 with full 512-bit "
                   "datapaths, Xeon Gold/Platinum; some client parts and Xeon Silver have one)")
    return 2, "2 (assumed: two vector FMA pipes per core)"


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def cpu_peak(*, cpuinfo: str | None = None, flags: set[str] | None = None, cores: int | None = None,
             clock_ghz: float | None = None, arch: str | None = None) -> CpuPeak:
    """The CPU's theoretical fp32, bf16 (and AMX bf16) peak with a human-readable derivation.

    The keyword arguments override what is read from the machine (tests use them).
    """
    text = cpuinfo if cpuinfo is not None else _read_cpuinfo()
    arch = (arch or platform.machine() or "unknown").lower()
    flags = set(flags) if flags is not None else _flags_from(text)
    if cores is not None:
        cores_source = "given"
    else:
        cores, cores_source = _cores()
    if clock_ghz is not None:
        clock_source = "given"
    else:
        clock_ghz, clock_source = _clock(text, flags)
    vector_bits, vector_source = _vector(arch, flags)
    lanes = vector_bits // 32
    fma_units, fma_source = _fma_units(arch, flags, text, vector_bits)
    notes = [(f"cores: {cores} from {cores_source}; under a VM a vCPU may be an SMT sibling of another, "
              "which would halve the real peak"),
             f"clock: {clock_source}",
             f"vector width: {vector_bits} bit from {vector_source}",
             f"FMA units per core: {fma_source}"]
    if "avx512_bf16" in flags:
        bf16_instruction, bf16_factor = "avx512_bf16 (vdpbf16ps)", 2
        notes.append("bf16: vdpbf16ps multiplies two bf16 pairs per fp32 lane and accumulates in fp32; assumed to "
                     "issue at the FMA rate")
    elif arch in ("aarch64", "arm64") and "bf16" in flags:
        bf16_instruction, bf16_factor = "bf16 (BFDOT)", 2
        notes.append("bf16: BFDOT multiplies two bf16 pairs per fp32 lane; assumed to issue at the FMA rate")
    else:
        bf16_instruction, bf16_factor = None, 1
    amx = "amx_bf16" in flags
    common = f"{cores} cores x {clock_ghz:.3f} GHz x {fma_units} FMA units x {lanes} fp32 lanes" if clock_ghz else ""
    if clock_ghz:
        peak_fp32 = cores * clock_ghz * fma_units * lanes * 2
        derivation_fp32 = f"{common} x 2 FLOP/FMA = {_fmt(peak_fp32)} GFLOP/s"
    else:
        peak_fp32 = None
        derivation_fp32 = f"not computed: clock {clock_source}"
    if bf16_instruction and clock_ghz:
        peak_bf16 = peak_fp32 * bf16_factor
        derivation_bf16 = (f"{common} x {bf16_factor} (bf16 pairs, {bf16_instruction}) x 2 FLOP/FMA "
                           f"= {_fmt(peak_bf16)} GFLOP/s")
    elif bf16_instruction:
        peak_bf16, derivation_bf16 = None, f"not computed: clock {clock_source}"
    else:
        peak_bf16 = None
        derivation_bf16 = "no native bf16 (no avx512_bf16 / amx_bf16 flag): bf16 is emulated, no bf16 peak"
    if amx and clock_ghz:
        peak_amx = cores * clock_ghz * _AMX_BF16_MACS_PER_CYCLE * 2
        derivation_amx = (f"{cores} cores x {clock_ghz:.3f} GHz x {_AMX_BF16_MACS_PER_CYCLE} bf16 MAC/cycle "
                          f"(one AMX TMUL per core) x 2 FLOP/MAC = {_fmt(peak_amx)} GFLOP/s")
    else:
        peak_amx, derivation_amx = None, None
    return CpuPeak(
        cpu_name=_cpu_name_from(text), arch=arch, cores=int(cores), cores_source=cores_source,
        clock_ghz=clock_ghz, clock_source=clock_source, vector_bits=vector_bits, fp32_lanes=lanes,
        fma_units=fma_units, fma_source=fma_source, bf16_instruction=bf16_instruction, bf16_factor=bf16_factor,
        amx_bf16=amx, peak_fp32_gflops=peak_fp32, peak_bf16_gflops=peak_bf16, peak_amx_bf16_gflops=peak_amx,
        derivation_fp32=derivation_fp32, derivation_bf16=derivation_bf16, derivation_amx=derivation_amx,
        flags=tuple(sorted(flags)), notes=tuple(notes),
    )


def flags_summary(flags: set[str] | tuple[str, ...]) -> str:
    """The flags that matter for inference speed, in a fixed order (e.g. ``avx2 fma avx512f avx512_bf16``)."""
    present = set(flags)
    return " ".join(flag for flag in _SUMMARY_FLAGS if flag in present) or "none of note"


@dataclass(frozen=True)
class MatmulCeiling:
    """Achieved GFLOP/s of ``n x n`` matmuls in ``dtype`` (2 n^3 FLOPs each): the best of ``reps`` timed runs
    after one warm-up (``gflops``, robust to a moment of noise) and their mean (``mean_gflops``)."""

    dtype: str
    n: int
    reps: int
    threads: int
    best_seconds: float
    gflops: float
    mean_gflops: float


def measure_matmul(dtype: str = "float32", n: int = 4096, reps: int = 5, threads: int | None = None) -> MatmulCeiling:
    """Time ``reps`` square matmuls with torch on the CPU (one warm-up first): an empirical compute ceiling."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch_dtype = getattr(torch, dtype)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(torch_dtype)
    b = torch.randn(n, n, generator=generator).to(torch_dtype)
    out = torch.empty(n, n, dtype=torch_dtype)
    torch.matmul(a, b, out=out)  # warm-up: oneDNN/MKL kernel selection, page faults
    times = []
    for _ in range(max(1, reps)):
        started = time.perf_counter()
        torch.matmul(a, b, out=out)
        times.append(time.perf_counter() - started)
    flop = 2.0 * n ** 3
    return MatmulCeiling(dtype, n, len(times), torch.get_num_threads(), min(times), flop / min(times) / 1e9,
                         flop * len(times) / sum(times) / 1e9)


_CLOCK_SOURCE = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* A chain of dependent one-cycle integer adds: the loop runs at one add per core clock. */
#if defined(__x86_64__)
#define ADD4 "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
#elif defined(__aarch64__)
#define ADD4 "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
#else
#error unsupported architecture
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    uint64_t loops = argc > 1 ? strtoull(argv[1], 0, 10) : 20000000ULL, x = 0;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double start = now();
        for (uint64_t i = 0; i < loops; i++) {
            __asm__ volatile(ADD4 ADD4 ADD4 ADD4 : "+r"(x));
        }
        double seconds = now() - start;
        if (seconds < best) best = seconds;
    }
    printf("%.6f %llu\n", loops * 16.0 / best / 1e9, (unsigned long long)x);
    return 0;
}
"""


def measure_core_clock(loops: int = 20_000_000) -> tuple[float | None, str]:
    """The clock one core really runs at, in GHz, from a chain of dependent integer adds (one per cycle).

    Needs a C compiler (``cc``); returns ``(None, why)`` without one or on an architecture other than
    x86-64/AArch64. Best of 5 runs of ``16 * loops`` adds on one core (the others idle: a single-core boost).
    """
    import shutil
    import subprocess
    import tempfile

    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None, "no C compiler to build the dependent-add loop"
    with tempfile.TemporaryDirectory(prefix="vup-clock-") as tmp:
        source, binary = Path(tmp) / "clock.c", Path(tmp) / "clock"
        source.write_text(_CLOCK_SOURCE, encoding="ascii")
        try:
            subprocess.run([compiler, "-O1", "-o", str(binary), str(source)], check=True, capture_output=True,
                           timeout=60)
            out = subprocess.run([str(binary), str(loops)], check=True, capture_output=True, text=True,
                                 timeout=120).stdout
            ghz = float(out.split()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            return None, f"the dependent-add loop did not build or run ({exc})"
    return ghz, f"a chain of dependent integer adds (one per cycle) on one core, best of 5, built with {compiler}"
