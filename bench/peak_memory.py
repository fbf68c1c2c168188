"""Peak resident memory of the running process, for the benchmarks' worker processes."""
from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB: VmHWM of /proc/self/status.

    Not getrusage's ru_maxrss: on Linux that carries the parent's high-water mark over
    fork + exec (``subprocess`` spawns with vfork), so a worker started by a driver that
    prepared the inputs reports at least the driver's peak (bench_montage's 2048 px
    children read 1991 MB where their own peak was 808-1016 MB).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
