"""Where the network runs on the CPU: PyTorch (the default) or OpenVINO (an optional extra).

``backend="torch"`` runs the network in PyTorch (oneDNN convolutions, ``channels_last_3d``,
bf16 autocast where the CPU has native bf16). ``backend="openvino"`` converts it once per
window shape to OpenVINO (through ``torch.onnx.export`` at that fixed shape) and runs it with
OpenVINO's CPU plugin at the same precision (``INFERENCE_PRECISION_HINT``) and its default
threads. On the 2-core AMD EPYC (avx512_bf16) of docs/benchmarks.md section 3, one 96^3
window of the CT network runs 2.4-2.6x faster in bf16 than in PyTorch and about 2.9x in fp32
(what CPUs without native bf16 run), with the same labels on 99.99 % of the voxels. Install
it with ``pip install "monai-attn[openvino]"``.

The conversion (ONNX export, OpenVINO's reading and compiling: about 5 s for the CT network)
is kept on disk: the converted model goes to :func:`openvino_cache_dir` under a digest of
the network's architecture, weights, window shape, precision and the torch and OpenVINO
versions, and OpenVINO's own ``CACHE_DIR`` keeps the compiled model beside it, so a later
process with the same weights and window loads it instead of converting again. New weights
give a new digest (nothing stale is ever loaded); a folder that cannot be written is skipped
with a warning and the conversion happens in memory, as before.

``backend="auto"`` measures instead of assuming (:func:`fastest_backend`): where OpenVINO is
installed and the network can run there (the CPU, logits only, a network module), one window
of ``roi_size`` is timed in both back ends once per CPU model, weights, window and precision,
and the faster one runs; the figures are kept in ``choice.json`` beside the converted
network, so later processes on that CPU read the choice. Without OpenVINO, on a GPU, with
attention maps or a TorchScript network, without a writable cache, or for a scan whose window
is not ``roi_size`` (thinner than it: a conversion for its few windows costs more than they
take), ``auto`` is torch.

``precision="int8"`` runs the OpenVINO network with int8 convolutions, quantised once per window
shape with calibration windows the bundle names (:mod:`monai_attn.inference.quantize`) and kept
in the same cache.

The OpenVINO network computes logits only: attention maps (``forward_with_attention``) need
the torch back end. It is converted from the network module (a bundle's ``network_def`` with
its state dict); a TorchScript file does not export to ONNX and needs the torch back end.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_attn.errors import InputError
from monai_attn.inference.devices import cpu_has_native_bf16, cpu_model
from monai_attn.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Environment variable naming the folder for converted networks (default: the user's cache).
CACHE_ENV = "MONAI_ATTN_CACHE_DIR"

#: OpenVINO's ``INFERENCE_PRECISION_HINT`` for each resolved precision (int8: :func:`_float_hint`).
_OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


#: Loggers of the ONNX exporter, its optimiser and NNCF: progress lines ("Removed 260 unused
#: nodes", "Statistics collection") and notices that say nothing to a user of ``segment``.
_CONVERSION_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir", "nncf")


@contextlib.contextmanager
def _quiet_conversion() -> Iterator[None]:
    """Hide the converters' prints, progress bars, warnings and log lines below ERROR while they run."""
    loggers = [logging.getLogger(name) for name in _CONVERSION_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(network: torch.nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Write ``network`` as ONNX (opset 18) for inputs of ``example``'s fixed shape; returns ``path``.

    ``torch.onnx.export`` (needs the ``onnx`` and ``onnxscript`` packages); input ``image``
    (B, C, *S) float32, output ``logits`` (B, classes, *S). Its progress lines, warnings and
    log notices are not shown (:func:`_quiet_conversion`); errors still raise.
    """
    with _quiet_conversion(), torch.no_grad():
        torch.onnx.export(
            network, (example,), str(path), opset_version=18, input_names=["image"], output_names=["logits"]
        )
    return Path(path)


class OpenVINONetwork:
    """The network compiled by OpenVINO for the CPU, one compiled model per window shape.

    Called like the network on a window batch (B, C, *S) float32, it returns the logits
    (B, classes, *S) float32 as a torch tensor. It runs the windows one at a time (batch 1),
    so batches of any size share one compiled model; each new window shape (C, *S) is
    exported and compiled once (about 5 s for the CT network at 96^3 on the 2-core CPU of the
    module docstring), or loaded from the on-disk cache of an earlier process.

    Args:
        network: the torch network in eval mode (logits from ``forward``).
        precision: resolved precision, ``"fp32"``, ``"bf16"`` or ``"fp16"``, passed to OpenVINO
            as its ``INFERENCE_PRECISION_HINT``, or ``"int8"``: convolutions quantised with
            ``calibration``'s windows (:mod:`monai_attn.inference.quantize`), the rest in bf16
            where the CPU has native bf16, fp32 otherwise.
        calibration: for int8, an object with ``name`` (str) and ``windows(shape)`` (inputs of
            ``shape`` (1, C, *S)), e.g. :class:`~monai_attn.inference.quantize.PhantomCalibration`.

    Raises:
        InputError: see :func:`check_openvino`; int8 without ``calibration``.
    """

    def __init__(self, network: torch.nn.Module, precision: str, calibration: Any = None) -> None:
        if precision == "int8" and calibration is None:
            raise InputError("precision int8 needs calibration windows: this bundle's inferer has no int8_calibration")
        self._openvino = check_openvino(network)
        self.network = network
        self.precision = precision
        self.calibration = calibration if precision == "int8" else None
        self._compiled: dict[tuple[int, ...], Any] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        windows = x.detach().float().contiguous()
        shape = tuple(windows.shape[1:])
        if shape not in self._compiled:
            self._compiled[shape] = self._compile(windows[:1])
        compiled = self._compiled[shape]
        return torch.cat([torch.from_numpy(np.asarray(compiled(w[None].numpy())[0])) for w in windows])

    def _compile(self, example: torch.Tensor) -> Any:
        config = {"INFERENCE_PRECISION_HINT": _float_hint(self.precision)}
        core = self._openvino.Core()
        variant = self.precision if self.calibration is None else f"{self.precision} ({self.calibration.name})"
        folder = writable_folder(openvino_cache_dir() / network_digest(
            self.network, tuple(example.shape), variant, self._openvino.__version__))
        if folder is None:
            with tempfile.TemporaryDirectory() as scratch:
                return core.compile_model(self._convert(core, example, Path(scratch)), "CPU", config)
        model = folder / "network.xml"
        if not model.is_file():
            with tempfile.TemporaryDirectory(dir=folder) as scratch:
                converted = self._convert(core, example, Path(scratch))
                self._openvino.save_model(converted, str(Path(scratch) / model.name), compress_to_fp16=False)
                os.replace(Path(scratch) / "network.bin", folder / "network.bin")
                os.replace(Path(scratch) / model.name, model)  # last: the .xml marks a complete pair
            logger.info("OpenVINO: converted the network for %s windows into %s", "x".join(map(str, example.shape[2:])),
                        folder)
        config["CACHE_DIR"] = str(folder / "compiled")
        return core.compile_model(str(model), "CPU", config)

    def _convert(self, core: Any, example: torch.Tensor, scratch: Path) -> Any:
        """The OpenVINO model of the network for ``example``'s shape, quantised for int8."""
        model = core.read_model(str(export_onnx(self.network, example, scratch / "network.onnx")))
        if self.calibration is None:
            return model
        from monai_attn.inference.quantize import quantized

        tick = time.perf_counter()
        windows = self.calibration.windows(tuple(example.shape))
        with _quiet_conversion():
            model = quantized(model, windows)
        logger.info("OpenVINO: quantised the network to int8 with %d windows of %s (%.0f s)", len(windows),
                    self.calibration.name, time.perf_counter() - tick)
        return model


def _float_hint(precision: str) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for ``precision``: for int8, the precision of what
    stays in floating point (bf16 on CPUs with native bf16, where it is faster, else f32)."""
    if precision == "int8":
        return "bf16" if cpu_has_native_bf16() else "f32"
    return _OPENVINO_PRECISION[precision]


def openvino_cache_dir() -> Path:
    """Where converted networks are kept: ``$MONAI_ATTN_CACHE_DIR/openvino``, else
    ``$XDG_CACHE_HOME/monai-attn/openvino``, else ``~/.cache/monai-attn/openvino``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "openvino"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "monai-attn" / "openvino"


def writable_folder(folder: Path) -> Path | None:
    """``folder``, created if missing, or None (with a warning) when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        logger.warning("%s: cannot keep the converted network there (%s); converting in memory. Set %s to a "
                       "writable folder to keep it", folder, err.strerror or err, CACHE_ENV)
        return None
    return folder


def network_digest(network: torch.nn.Module, input_shape: tuple[int, ...], precision: str, runtime: str) -> str:
    """SHA-256 (hex, 24 characters) of what a converted network depends on: the module's
    architecture (``repr``) and every weight and buffer, the input shape (B, C, *S), the
    precision and the torch and runtime versions."""
    digest = hashlib.sha256(repr((type(network).__qualname__, repr(network), input_shape, precision,
                                  torch.__version__, runtime)).encode())
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def check_openvino_run(network: torch.nn.Module, device: torch.device, attention_maps: bool) -> Any:
    """The ``openvino`` module, if ``network`` can run there on ``device``; one clear
    :class:`InputError` otherwise.

    Refused: a device other than the CPU, attention maps (OpenVINO computes logits only), and
    what :func:`check_openvino` refuses. ``segment`` calls it before the first case, the
    inferer before converting.
    """
    if device.type != "cpu":
        raise InputError(f"backend openvino runs on the CPU, not on {device}; use --device cpu or backend torch")
    if attention_maps:
        raise InputError("attention maps need backend torch (the openvino backend computes logits only)")
    return check_openvino(network)


def check_openvino(network: torch.nn.Module) -> Any:
    """The ``openvino`` module, if ``network`` can run there; one clear :class:`InputError` otherwise.

    Refused: a TorchScript network, and an environment without openvino or without the ONNX
    exporter's packages (onnx, onnxscript).
    """
    if isinstance(network, torch.jit.ScriptModule):
        raise InputError("backend openvino converts a network module, not TorchScript: use the bundle's "
                         "network_def and state dict (--bundle, or --model weights.pt --config), or backend torch")
    try:
        import onnx  # noqa: F401  torch.onnx.export needs both
        import onnxscript  # noqa: F401
        import openvino
    except ImportError as err:
        raise InputError(
            f"backend openvino needs the openvino extra ({err.name} is missing): pip install \"monai-attn[openvino]\""
        ) from err
    return openvino


def openvino_installed(network: torch.nn.Module) -> bool:
    """Whether :func:`check_openvino` would accept ``network`` here (no message)."""
    try:
        check_openvino(network)
    except InputError:
        return False
    return True


def fastest_backend(network: torch.nn.Module, precision: str, input_shape: tuple[int, ...],
                    timers: Mapping[str, Callable[[], float]]) -> str:
    """The back end whose timer (seconds per window) is lowest on this CPU, measured once.

    The measurement is kept as ``choice.json`` in the converted network's cache folder (its
    digest covers weights, window and precision) with the CPU model it was made on; a record
    of another CPU is measured again. Returns ``"torch"`` unmeasured when the folder cannot be
    written: measuring in every process would cost more than it saves on one scan.
    """
    import openvino

    folder = writable_folder(openvino_cache_dir() / network_digest(network, input_shape, precision, openvino.__version__))
    if folder is None:
        return "torch"
    record, cpu = folder / "choice.json", cpu_model()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = json.loads(record.read_text())
        if saved["cpu"] == cpu and saved["backend"] in timers:
            return str(saved["backend"])
    seconds = {name: float(timer()) for name, timer in timers.items()}
    backend = min(seconds, key=seconds.__getitem__)
    window = "x".join(map(str, input_shape[2:]))
    logger.info("backend auto: %s on this CPU (%s; %s per %s window in %s), measured once; kept in %s", backend, cpu,
                ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items()), window, precision, record)
    text = json.dumps({"cpu": cpu, "precision": precision, "window": list(input_shape[2:]),
                       "seconds_per_window": seconds, "backend": backend}, indent=1)
    with atomic_path(record) as partial:
        partial.write_text(text)
    return backend
