"""`dmwan model create | export | info`: bundles from pretrained towers, their ONNX graphs, and what a
bundle is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import UsageError

from .options import MODEL_REFS
from .root import app

model_app = typer.Typer(
    name="model",
    help="Make a bundle from pretrained towers (zero-shot CLIP), and read a bundle's model card.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(model_app, name="model")


@model_app.command("create")
def create(
    preset: str = typer.Option(..., "--preset", metavar="NAME", help="architecture: efficientnet_lite0 (offline ImageNet weights), vit_b16, vit_b16_timm, tiny, tiny_timm, or a preset JSON"),
    output: Path = typer.Option(..., "--output", "-o", metavar="DIR", help="the bundle folder to write"),
    pretrained: Optional[str] = typer.Option(
        None, "--pretrained", metavar="TAG|FILE",
        help="weights: an open_clip tag (openai, laion2b_s34b_b88k, ...), hub (timm), package (a pip package's: "
             "efficientnet_lite0, its default), or a local weights file; none: random"),
    text_pretrained: Optional[str] = typer.Option(
        None, "--text-pretrained", metavar="TAG|FILE", help="CLIP weights of the text tower of a timm preset"),
    seed: int = typer.Option(0, help="seeds random weights and projections"),
    force: bool = typer.Option(False, "--force", help="replace an existing bundle at DIR"),
    as_json: bool = typer.Option(False, "--json", help="print the model card as JSON"),
) -> None:
    """Write a bundle of a preset's pretrained towers as they are, with no DMWAN training:
    zero-shot sketch retrieval, ready for `dmwan ingest --model DIR`."""
    from dmwan_qdrant.model import create_bundle

    _check_output(output, force)
    path = create_bundle(preset, output, pretrained, text_pretrained, seed=seed)
    report = _card_report(path)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"wrote {path}: {report['preset']}, pretrained {report['pretrained_text']}, "
               f"fingerprint {report['fingerprint']}")
    typer.echo(f"next: dmwan ingest ./photos --collection photos --model {path}")


def _check_output(output: Path, force: bool) -> None:
    if not output.exists():
        return
    if not output.is_dir():
        raise UsageError(f"{output} exists and is not a folder")
    from dmwan_qdrant.errors import CheckpointError
    from dmwan_qdrant.model import read_bundle_record

    if not any(output.iterdir()):
        return
    try:
        read_bundle_record(output)
    except CheckpointError:
        raise UsageError(f"{output} is a folder with other files in it, not a bundle: choose another -o") from None
    if not force:
        raise UsageError(f"{output} is a bundle already: pass --force to replace it")


@model_app.command("export")
def export(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="the bundle folder to export"),
    format: str = typer.Option("onnx", "--format", metavar="FORMAT", help="onnx (the only format)"),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", metavar="DIR",
        help="write a search-only bundle here (config, card, graphs; no torch weights); default: into BUNDLE"),
    quantize: Optional[str] = typer.Option(None, "--quantize", metavar="int8|float16",
                                          help="int8: quantize the weights (smaller, faster on CPU); float16: store them in "
                                               "half the size, computed in float32"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Export a bundle's sketch and photo towers (and its text tower) as ONNX graphs, checked
    against torch on sample inputs, so that ingest, query and serve run on onnxruntime without
    torch (--runtime onnx, or auto)."""
    from dmwan_qdrant.runtime import require_torch

    if format != "onnx":
        raise UsageError(f"unknown export format {format!r}: use onnx")
    require_torch("dmwan model export")
    from dmwan_qdrant.runtime import installed

    if not installed("onnx") or not installed("onnxruntime"):
        raise UsageError("dmwan model export needs onnx and onnxruntime: pip install onnx onnxruntime")
    from dmwan_qdrant.runtime.export import export_onnx

    report = export_onnx(bundle, output, quantize)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    sizes = ", ".join(f"{name} {n / 1e6:.1f} MB" for name, n in report.graphs.items())
    typer.echo(f"wrote {report.bundle}/onnx: {sizes}{' (int8)' if report.quantize else ''}; "
               f"worst cosine to torch {report.worst_cosine:.6f}")
    typer.echo(f"next: dmwan query SKETCH --collection NAME --runtime onnx (or ingest --model {report.bundle})")


@model_app.command("info")
def info(
    bundle: str = typer.Argument(..., metavar="BUNDLE|NAME", help=f"a bundle: {MODEL_REFS}"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Print a bundle's model card: preset, pretrained source, training data and split, epochs,
    metrics, date and library versions (reads config.json only)."""
    from dmwan_qdrant.encoder import bundle_folder
    from dmwan_qdrant.model.hub import is_hub_name
    from dmwan_qdrant.model.shipped import is_shipped_name

    named = is_hub_name(str(bundle)) or is_shipped_name(bundle)
    report = _card_report(bundle_folder(bundle), str(bundle) if named else None)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for line in card_lines(report):
        typer.echo(line)


def _card_report(folder: Path, name: str | None = None) -> dict[str, Any]:
    """What `model info` prints: the record's identity, the architecture and the card."""
    from dmwan_qdrant.model import read_bundle_record
    from dmwan_qdrant.model.card import card_of, source_text, training_text

    record = read_bundle_record(folder)
    card = card_of(record)
    arch = record["model"]
    classes = (record.get("metadata") or {}).get("class_names") or []
    return {
        "bundle": str(folder), "name": name, "fingerprint": record.get("fingerprint"),
        "preset": card.get("preset") or arch.get("name"),
        "architecture": {"backbone": arch.get("backbone"), "clip_model": arch.get("clip_model"),
                         "timm_model": arch.get("timm_model"), "embed_dim": arch.get("embed_dim"),
                         "token_dim": arch.get("token_dim"), "num_tokens": arch.get("num_tokens"),
                         "image_size": arch.get("image_size")},
        "pretrained": card.get("pretrained"), "text_pretrained": card.get("text_pretrained"),
        "pretrained_text": source_text(card.get("pretrained")),
        "init": card.get("init"), "training": card.get("training"), "training_text": training_text(card.get("training")),
        "metrics": card.get("metrics"), "rerank": card.get("rerank"), "class_names": classes,
        "created": card.get("created"), "versions": card.get("versions"), "onnx": _graphs_report(folder, record),
    }


def _graphs_report(folder: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The bundle's exported graphs (sizes, quantization, the export's check), or None."""
    from dmwan_qdrant.errors import CheckpointError
    from dmwan_qdrant.runtime.graphs import has_graphs, read_manifest

    if not has_graphs(folder):
        return None
    try:
        m = read_manifest(folder, record)
    except CheckpointError as e:
        return {"error": str(e)}
    return {"graphs": {n: g["bytes"] for n, g in m["graphs"].items()}, "quantize": m.get("quantize"),
            "worst_cosine": (m.get("check") or {}).get("worst_cosine")}


def rerank_text(choice: dict[str, Any] | None) -> str:
    """A card's re-rank choice as one phrase."""
    if not isinstance(choice, dict):
        return "off by default (no validation classes measured it; --rerank turns it on)"
    v = choice.get("validation") or {}
    cos, fused = v.get("cosine") or {}, v.get("fused") or {}
    figures = ", ".join(f"{k} {100 * cos[k]:.1f} -> {100 * fused[k]:.1f}" for k in ("P@10", "mAP@200")
                        if k in cos and k in fused)
    state = "on" if choice.get("on") else "off"
    gain, se = 100 * float(choice.get("gain_mAP@200", 0.0)), 100 * float(choice.get("se_mAP@200", 0.0))
    return (f"{state} by default (fused w {choice.get('weight')}, top {choice.get('prefetch')}; validation "
            f"{figures}: mAP@200 {gain:+.1f}, standard error {se:.1f})")


def card_lines(r: dict[str, Any]) -> list[str]:
    """The card as aligned lines."""
    a = r["architecture"]
    tower = a.get("clip_model") if a.get("backbone") == "open_clip" else a.get("timm_model")
    tower = tower or "inline config"
    lines = [("bundle", r["bundle"])]
    if r.get("name"):
        lines.append(("name", r["name"]))
    lines += [
        ("fingerprint", r["fingerprint"]),
        ("preset", f"{r['preset']} ({a.get('backbone')} {tower}, {a.get('image_size')} px; "
                   f"{a.get('embed_dim')}-d global, {a.get('num_tokens')} tokens of {a.get('token_dim')})"),
        ("pretrained", r["pretrained_text"]),
    ]
    g = r.get("onnx")
    if g:
        lines.append(("onnx", g["error"] if "error" in g else
                      ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in g["graphs"].items())
                      + (f", {g['quantize']}" if g.get("quantize") else "")
                      + f" (worst cosine to torch {g['worst_cosine']:.6f})"))
    if r.get("init"):
        lines.append(("fine-tuned", f"from {r['init'].get('name')} ({r['init'].get('fingerprint')})"))
    lines.append(("trained on", r["training_text"]))
    t = r.get("training") or {}
    if t.get("selected_by"):
        lines.append(("selected by", t["selected_by"]))
    if t.get("unseen_classes") is not None:
        unseen = t["unseen_classes"]
        val = t.get("validation_classes") or []
        lines.append(("classes", f"{t.get('seen_classes')} seen, " + (f"{len(val)} validation, " if val else "")
                                 + f"{len(unseen)} unseen"
                                 + (f": {', '.join(unseen[:8])}{' ...' if len(unseen) > 8 else ''}" if unseen else "")))
    metrics = r.get("metrics") or {}
    for which, label in (("validation", "validation classes"), ("test", "unseen test classes")):
        m = metrics.get(which)
        if m:
            lines.append((which, f"{label}: " + "  ".join(f"{k} {100 * v:.1f}" for k, v in m.items())))
    if not any(metrics.get(w) for w in ("validation", "test")):
        lines.append(("metrics", "none recorded (`dmwan eval --model BUNDLE` scores it)"))
    lines.append(("re-rank", rerank_text(r.get("rerank"))))
    lines.append(("created", r.get("created") or "unknown (a bundle from before model cards)"))
    if r.get("versions"):
        lines.append(("versions", ", ".join(f"{k} {v}" for k, v in r["versions"].items() if v)))
    width = max(len(k) for k, _ in lines) + 2
    return [f"{k:<{width}}{v}" for k, v in lines]
