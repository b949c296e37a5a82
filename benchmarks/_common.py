"""Helpers shared by the benchmark scripts: machine description, peak memory, child processes, tables.

Benchmarks that report peak memory run each measured variant in a fresh Python process
(:func:`run_child`), so that one variant's peak resident set size (RSS) does not hide
another's: the child measures its own high-water mark (:func:`peak_rss_bytes`) and prints
one ``RESULT {json}`` line, which the parent parses.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_attn.inference.devices import cpu_model

#: Prefix of the line a child process prints its result on.
RESULT_PREFIX = "RESULT "


def load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages (runnable processes; compare with the core count)."""
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def machine_description(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: CPU (and whether it has native bf16, which decides what
    ``precision auto`` runs), cores, memory, library versions, load, GPU."""
    import monai
    import numpy
    import psutil
    import torch

    from monai_attn.inference.devices import cpu_has_native_bf16

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "native_bf16": cpu_has_native_bf16(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in load_average()],
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return info


def format_machine(info: dict[str, Any]) -> str:
    """One line describing the machine, for the top of a benchmark's output."""
    bf16 = "native bf16: precision auto = bf16" if info["native_bf16"] else "no native bf16: precision auto = fp32"
    text = (
        f"CPU: {info['cpu']} ({bf16}), {info['usable_cpus']} usable of {info['logical_cpus']} logical CPUs, "
        f"{info['ram_gib']} GiB RAM; python {info['python']}, torch {info['torch']}, monai {info['monai']}, "
        f"numpy {info['numpy']}; torch threads {info['torch_threads']}; "
        f"load average {' '.join(f'{x:.2f}' for x in info['load_average'])}"
    )
    if "gpu" in info:
        text += f"; GPU: {info['gpu']}"
    return text


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes.

    On Linux this is ``VmHWM`` of /proc/self/status: the high-water mark of this process's own
    memory. ``getrusage().ru_maxrss`` is not used there because a child started by fork + exec
    inherits the RSS of the parent at the fork as its starting maximum. Elsewhere it is
    ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def rss_bytes() -> int:
    """This process's resident set size now, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def run_child(script: str | os.PathLike, payload: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
    """Run ``python script --child JSON`` in a fresh process and return the result it prints.

    The child prints ``RESULT {json}`` as its last result line; anything else it writes
    (logs, progress) is kept and shown only when it fails.
    """
    command = [sys.executable, str(script), "--child", json.dumps(payload)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    results = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not results:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"benchmark child {payload.get('name', '')} failed (exit {completed.returncode}):\n{tail}")
    return json.loads(results[-1][len(RESULT_PREFIX) :])


def print_child_result(result: dict[str, Any]) -> None:
    """What a child process prints for :func:`run_child` to read."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` has one character per column: ``l`` or ``r`` (default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def default_work_dir() -> Path:
    """Where benchmarks cache generated phantoms and write outputs: ``benchmarks/.cache`` (git-ignored)."""
    return Path(__file__).resolve().parent / ".cache"
