"""`dmwan model export --format onnx`: a bundle's towers as ONNX graphs, checked against torch.

The visual graph takes a batch of any size and the domain of each image, so one graph (one copy
of the weights) serves both towers; the text graph is the frozen CLIP text tower. Before anything
is written, onnxruntime runs the new graphs on sample inputs beside torch: graphs whose vectors
differ from torch's (a cosine under `MIN_COSINE`, or `MIN_COSINE_INT8` for int8) are refused.
The graphs land in the bundle's ``onnx/`` folder in one rename, so a crash leaves the old ones.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, UsageError
from ..model.bundle import CONFIG_FILE, WEIGHTS_FILE, read_bundle_record
from .graphs import MANIFEST, ONNX_DIR, ONNX_FORMAT, TEXT, VISUAL, VOCAB_FILE, file_entry, graph_folder

OPSET = 17
MIN_COSINE = 0.9999
"""The worst cosine between a torch vector and its ONNX twin that an fp32 export may show."""
MIN_COSINE_INT8 = 0.98
"""The same for ``--quantize int8``, whose weights are rounded to 256 levels."""
QUANTIZE = ("int8", "float16")
"""``int8``: onnxruntime's dynamic int8 quantization of the matrix products; ``float16``: every
large weight stored as float16 and cast to float32 once, when the session opens (half the file,
float32 arithmetic, the vectors of the bundle's float16-rounded weights)."""
CHECK_BATCH = 3
"""Sample images per domain in the check (another batch size than the export's two)."""


@dataclass
class ExportReport:
    """What an export wrote and how close its graphs came to torch."""

    bundle: Path
    graphs: dict[str, int]  # graph name -> bytes
    worst_cosine: float
    quantize: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "graphs": self.graphs, "worst_cosine": self.worst_cosine,
                "quantize": self.quantize}


def _modules(model: Any) -> tuple[Any, Any | None]:
    import torch
    import torch.nn.functional as F

    class Visual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor, domains: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.model.encode(images, domains)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = model.clip

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return F.normalize(self.clip.encode_text(ids).float(), dim=-1)

    return Visual().eval(), (Text().eval() if model.clip is not None else None)


def _sample_images(model: Any) -> np.ndarray:
    """Sample inputs: a drawn sketch and a filled shape through the real preprocessing, then noise
    of the normalised range (seeded)."""
    from PIL import Image, ImageDraw

    from ..model.imageprep import ArrayPreprocess

    c = model.config
    sketch = Image.new("RGB", (120, 90), "white")
    ImageDraw.Draw(sketch).ellipse((20, 10, 100, 80), outline="black", width=4)
    photo = Image.new("RGB", (90, 120), (40, 120, 200))
    ImageDraw.Draw(photo).rectangle((10, 30, 70, 100), fill=(230, 180, 20))
    arrays = [ArrayPreprocess(c.image_size, "sketch", c.mean, c.std)(sketch),
              ArrayPreprocess(c.image_size, "photo", c.mean, c.std)(photo)]
    noise = np.random.default_rng(0).standard_normal((CHECK_BATCH * 2 - 2, 3, c.image_size, c.image_size))
    return np.concatenate([np.stack(arrays), noise.astype(np.float32)])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)


def _check(model: Any, folder: Path, graphs: dict[str, str], ids: np.ndarray | None) -> float:
    """The worst cosine between torch's and onnxruntime's vectors (global, tokens, text)."""
    import onnxruntime as ort
    import torch

    session = {name: ort.InferenceSession(os.fspath(folder / f), providers=["CPUExecutionProvider"])
               for name, f in graphs.items()}
    images = _sample_images(model)
    domains = np.array([1, 0] + [i % 2 for i in range(len(images) - 2)], dtype=np.int64)
    with torch.inference_mode():
        g, t = model.encode(torch.from_numpy(images), torch.from_numpy(domains))
    og, ot = session[VISUAL].run(None, {"images": images, "domains": domains})
    worst = min(_cosines(g.numpy(), og).min(), _cosines(t.numpy(), ot).min())
    if ids is not None:
        with torch.inference_mode():
            text = torch.nn.functional.normalize(model.clip.encode_text(torch.from_numpy(ids)).float(), dim=-1)
        (otext,) = session[TEXT].run(None, {"ids": ids})
        worst = min(worst, _cosines(text.numpy(), otext).min())
    return float(worst)


def _vocab_file() -> Path:
    import open_clip

    return Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"


def _sample_ids(model: Any, vocab: Path) -> np.ndarray:
    from .tokenizer import ClipTokenizer

    names = list(getattr(model, "class_names", []))[:4] or ["shoe", "cat"]
    texts = ["a red shoe", "a sketch of a bicycle"] + [p.format(n) for n in names for p in model.config.prompts[:1]]
    return ClipTokenizer(vocab, model.config.context_length)(texts)


def _check_target(bundle: Path, out: Path | None, record: dict[str, Any]) -> Path:
    """The folder the graphs go in: ``bundle`` itself, or a new (or same-model) ``out``."""
    if out is None or (out.exists() and out.resolve() == bundle.resolve()):
        return bundle
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / CONFIG_FILE).is_file()):
            raise UsageError(f"{out} exists and is not a model bundle; give a new folder")
        if (out / CONFIG_FILE).is_file() and read_bundle_record(out).get("fingerprint") != record["fingerprint"]:
            raise UsageError(f"{out} holds another model; give a new folder")
    return out


def _fill_target(bundle: Path, target: Path) -> None:
    """Make ``target`` a search-only bundle of ``bundle``: its config and card files, without
    the torch weights."""
    if target == bundle:
        return
    target.mkdir(parents=True, exist_ok=True)
    for item in bundle.iterdir():
        if item.is_file() and item.name != WEIGHTS_FILE:
            shutil.copy2(item, target / item.name)


def export_onnx(bundle: str | Path, out: str | Path | None = None, quantize: str | None = None) -> ExportReport:
    """Export the towers of the bundle at ``bundle`` into ``out``/onnx (default: the bundle's).

    Args:
        bundle: a model bundle folder (with its torch weights).
        out: another folder to write a search-only bundle to (config, card, graphs; no torch
            weights); None writes into ``bundle``.
        quantize: ``"int8"`` for onnxruntime's dynamic int8 quantization of the weights,
            ``"float16"`` for weights stored as float16 (`QUANTIZE`).

    Raises:
        CheckpointError: a bad bundle, or graphs whose vectors differ from torch's.
        UsageError: an unknown ``quantize``, an ``out`` that holds something else.
    """
    import torch

    from ..model import load_model
    from ..model.checkpoint import _make_temp_dir

    if quantize is not None and quantize not in QUANTIZE:
        raise UsageError(f"unknown quantization {quantize!r}: use {', '.join(QUANTIZE)}")
    bundle = Path(bundle).expanduser().resolve()
    record = read_bundle_record(bundle)
    if not (bundle / WEIGHTS_FILE).is_file() and graph_folder(bundle).is_dir():
        raise CheckpointError(f"{bundle}: a search-only bundle (ONNX graphs, no {WEIGHTS_FILE}): "
                              "export from the bundle it was exported from")
    model = load_model(bundle, device="cpu")
    target = _check_target(bundle, Path(out).expanduser() if out is not None else None, record)
    visual, text = _modules(model)
    size = model.config.image_size
    home = target if target.is_dir() else target.parent
    home.mkdir(parents=True, exist_ok=True)
    work = _make_temp_dir(home, prefix=f".{target.name}.{ONNX_DIR}.")
    try:
        graphs = {VISUAL: f"{VISUAL}.onnx"}
        # Traced with autograd on and every weight requiring it: otherwise torch takes its fused
        # attention kernel, which has no ONNX form (the loaded copy is dropped afterwards).
        model.requires_grad_(True)
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constants it keeps
            torch.onnx.export(
                visual, (torch.randn(2, 3, size, size), torch.tensor([0, 1])), os.fspath(work / graphs[VISUAL]),
                dynamo=False, opset_version=OPSET, input_names=["images", "domains"],
                output_names=["global", "tokens"],
                dynamic_axes={n: {0: "batch"} for n in ("images", "domains", "global", "tokens")},
            )
            ids = None
            if text is not None:
                graphs[TEXT] = f"{TEXT}.onnx"
                shutil.copyfile(_vocab_file(), work / VOCAB_FILE)
                ids = _sample_ids(model, work / VOCAB_FILE)
                torch.onnx.export(
                    text, (torch.from_numpy(ids[:2]),), os.fspath(work / graphs[TEXT]), dynamo=False,
                    opset_version=OPSET, input_names=["ids"], output_names=["text"],
                    dynamic_axes={"ids": {0: "batch"}, "text": {0: "batch"}},
                )
        if quantize == "int8":
            _quantize(work, graphs)
        elif quantize == "float16":
            for file in graphs.values():
                half_weights(work / file)
        worst = _check(model, work, graphs, ids)
        floor = MIN_COSINE_INT8 if quantize == "int8" else MIN_COSINE
        if not worst >= floor:
            raise CheckpointError(
                f"{bundle}: the exported graphs differ from torch (worst cosine {worst:.6f}, under {floor}); "
                "nothing was written"
            )
        manifest = {
            "format": ONNX_FORMAT, "fingerprint": record["fingerprint"], "opset": OPSET, "quantize": quantize,
            "graphs": {name: file_entry(work / f) for name, f in graphs.items()},
            "check": {"worst_cosine": worst, "images": 2 * CHECK_BATCH},
        }
        if ids is not None:
            manifest["tokenizer"] = {**file_entry(work / VOCAB_FILE), "context_length": int(model.config.context_length)}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fill_target(bundle, target)
        _swap_in(work, graph_folder(target))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportReport(target, {n: int(manifest["graphs"][n]["bytes"]) for n in graphs}, worst, quantize)


QUANTIZED_OPS = ["MatMul", "Gemm"]
"""What ``--quantize int8`` rounds: the weights of matrix products (nearly all of a ViT's).
Convolutions stay float32: onnxruntime's int8 convolutions turned EfficientNet-Lite0's vectors
into others (worst cosine 0.38 per tensor, 0.58 per channel) and ran ten times slower on CPU."""


def _quantize(folder: Path, graphs: dict[str, str]) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantizer's advice on static quantization, per tensor
    try:
        for name, file in graphs.items():
            src = folder / file
            tmp = folder / f"{name}.fp32.onnx"
            os.replace(src, tmp)
            quantize_dynamic(os.fspath(tmp), os.fspath(src), weight_type=QuantType.QInt8,
                             op_types_to_quantize=QUANTIZED_OPS)
            tmp.unlink()
    finally:
        logging.disable(logging.NOTSET)


def half_weights(path: Path, min_size: int = 1024) -> None:
    """Rewrite the graph at ``path`` with each float32 weight of ``min_size`` or more elements
    stored as float16 and followed by a Cast to float32: the file halves, and onnxruntime folds
    the casts into float32 constants when a session opens, so inference runs as before."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(os.fspath(path))
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_size:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}.float16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}.to_float32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path))


def _swap_in(work: Path, final: Path) -> None:
    """``work`` becomes ``final`` (the old graphs, if any, go only once the new are in place)."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(work, final)
    shutil.rmtree(old, ignore_errors=True)
