"""Export the MindSpore network: MindIR (loaded back with ``mindspore.load`` and
``nn.GraphCell``) and ONNX (loaded back with onnxruntime), each checked against the
network's own output on real features.

The MindIR graph has dynamic batch and time axes and carries the config as
``user_info["deepspeech2_config"]``. ONNX goes through the PyTorch network with the
same weights (``convert.py``): MindSpore 2.10's ONNX exporter writes fixed input
shapes only and mis-orders the asymmetric padding of the 41x11/21x11 convolutions,
while the PyTorch exporter gives dynamic axes and the metadata ``ds2 transcribe
--onnx`` reads. The check is against the MindSpore network all the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ... import onnx_contract as contract
from ...atomic import atomic_output
from ...data.dataset import Batch

MINDIR_CONFIG_KEY = contract.CONFIG_KEY  # the MindIR's user_info carries the config under the ONNX key's name


def export_mindir(backend, path: Path, example: Batch) -> dict:
    """Write ``path`` (.mindir) with dynamic batch and time, reload it, compare on ``example``."""
    import mindspore as ms
    from mindspore import Tensor, nn

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bins = backend.cfg.audio.num_bins
    config = json.dumps(backend.cfg.to_dict())

    def add_config(model) -> None:
        model.user_info[MINDIR_CONFIG_KEY] = config

    backend.net.set_train(False)
    with atomic_output(path, ".mindir", mode=0o644) as tmp:  # MindSpore writes it read-only (0o400)
        ms.export(backend.net, Tensor(shape=[None, bins, None], dtype=ms.float32),
                  Tensor(shape=[None], dtype=ms.int32), file_name=str(tmp), file_format="MINDIR",
                  custom_func=add_config)

    expected, expected_lengths = backend.log_probs(example)
    graph = nn.GraphCell(ms.load(str(path)))
    got, got_lengths = graph(Tensor(example.features), Tensor(example.feature_lengths.astype(np.int32)))
    got, got_lengths = got.asnumpy(), got_lengths.asnumpy()
    if not np.array_equal(got_lengths, expected_lengths):
        raise RuntimeError(f"{path}: MindIR output lengths {got_lengths} differ from the network's {expected_lengths}")
    return {"path": str(path), "format": "mindir",
            "max_abs_diff": contract.max_abs_diff(got, expected, expected_lengths), "batch": len(example),
            "bytes": path.stat().st_size}


def mindir_config(path: str | Path) -> dict:
    """The config stored in a MindIR file by ``export_mindir``."""
    import mindspore as ms

    model = ms.load_mindir(str(path))
    if MINDIR_CONFIG_KEY not in model.user_info:
        raise ValueError(f"{path}: no {MINDIR_CONFIG_KEY} in the MindIR user_info; export it with `ds2 export`")
    return json.loads(model.user_info[MINDIR_CONFIG_KEY])


def export_onnx(backend, path: Path, example: Batch, int8: bool = False) -> dict:
    """ONNX through the PyTorch network with these weights (``int8``: quantized as PyTorch's export
    does); compared with onnxruntime against the MindSpore network's output (and against PyTorch
    by ``export_onnx``)."""
    from ..torch.engine import TorchBackend, check_state_dict
    from ..torch.export import export_onnx as torch_export_onnx
    from .convert import as_torch_tensors, torch_from_mindspore

    cfg = backend.cfg
    torch_cfg = type(cfg).from_dict({**cfg.to_dict(), "backend": "torch"})
    twin = TorchBackend(torch_cfg, "cpu")
    state = as_torch_tensors(torch_from_mindspore(backend.network_parameters(), cfg))
    check_state_dict("the MindSpore network", twin.model, state)
    twin.model.load_state_dict(state)
    report = torch_export_onnx(twin.model, path, example, contract.config_metadata(cfg.to_dict()), int8=int8)
    expected, expected_lengths = backend.log_probs(example)
    report["max_abs_diff_torch"] = report["max_abs_diff"]
    report["max_abs_diff"] = contract.compare(path, example.features, example.feature_lengths, expected,
                                              expected_lengths, "the network's")
    return report
