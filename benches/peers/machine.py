"""The machine a benchmark ran on, for every result: CPU model, the SIMD features the kernels can
use, vCPUs. The project's machines are one kind but not one CPU (AMD EPYC with AVX2 + FMA, or
Intel Xeon with AVX-512, VNNI and AMX), and results differ between them."""
import os
import platform

SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


def cpu():
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    features = " ".join(f for f in SIMD if f in flags) or "unknown"
    return f"{model} ({platform.machine()}, {os.cpu_count()} vCPUs; {features})"
