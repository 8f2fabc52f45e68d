"""What a new user meets in the first hour: a warning for a model that never saw a real photo,
messages that say where a model comes from, help that wraps at the terminal, a quick `info`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli_helpers import dmwan, one_line_error
from serve_helpers import make_collection

from dmwan_qdrant.model.card import saw_real_photos, toy_warning


@pytest.mark.parametrize("card, real", [
    ({"preset": "tiny", "pretrained": None, "training": None}, False),  # random weights
    ({"preset": "tiny", "pretrained": None, "training": {"dataset": "procedural"}}, False),  # the demo's
    ({"preset": "tiny", "pretrained": None, "training": {"dataset": "glyphs"}}, False),
    ({"preset": "tiny", "pretrained": None, "training": {"dataset": "folder"}}, True),  # the user's own photos
    ({"preset": "vit_b16", "pretrained": "openai", "training": None}, True),
    ({"preset": "efficientnet_lite0", "pretrained": "package", "training": {"dataset": "procedural"}}, True),
    ({"preset": "tiny", "init": {"saw_real_photos": True}, "training": {"dataset": "procedural"}}, True),
    ({"preset": "tiny", "init": {"saw_real_photos": False}, "training": {"dataset": "procedural"}}, False),
])
def test_which_bundles_never_saw_a_real_photo(card, real):
    assert saw_real_photos(card) is real
    warning = toy_warning(card)
    assert (warning is None) is real
    if warning:
        assert "dmwan model create --preset efficientnet_lite0" in warning and "dmwan train --data" in warning


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return make_collection(tmp_path_factory.mktemp("hour"))


def test_ingest_and_query_warn_in_one_line_about_a_toy_model(served, capsys):
    code, _, err = dmwan(capsys, "query", served["sketches"][0], "-c", "pics", "--store", served["store"])
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert code == 0 and len(warnings) == 1 and "never seen a real photo (random weights" in warnings[0]
    code, out, err = dmwan(capsys, "ingest", served["root"] / "photos", "-c", "pics", "--store", served["store"])
    assert code == 0 and sum(line.startswith("warning:") for line in err.splitlines()) == 1
    # A run with nothing to read says so, not "0.0 images/s".
    assert "none needed reading" in out and "0.0 images/s" not in out + err


def test_every_give_model_message_says_where_a_model_comes_from(served, capsys, monkeypatch, tmp_path):
    from dmwan_qdrant.model import shipped

    # An install without the shipped model (dmwan-sketch, the default for a new collection).
    monkeypatch.setattr(shipped, "shipped_folder", lambda name=shipped.SHIPPED_MODEL: tmp_path / name)
    code, _, err = dmwan(capsys, "ingest", served["root"] / "photos", "-c", "fresh", "--store", served["store"])
    line = one_line_error(err)
    assert code == 2 and "give --model BUNDLE" in line
    assert "dmwan model create --preset efficientnet_lite0" in line and "dmwan train --data" in line


def test_help_paragraphs_are_one_line_each_for_the_terminal_to_wrap():
    from dmwan_qdrant.cli.helptext import reflow

    text = "Summary.\n\n    Scores are cosines, or the fused global and local-token\n    score; more.\n\n" \
           "    --export FILE is written:\n    .npy: the vectors,\n    and ids;\n    .parquet: columns."
    assert reflow(text).split("\n\n") == [
        "Summary.", "Scores are cosines, or the fused global and local-token score; more.",
        "--export FILE is written:\n.npy: the vectors, and ids;\n.parquet: columns."]
    wide = subprocess.run([sys.executable, "-m", "dmwan_qdrant.cli", "query", "--help"], capture_output=True,
                          text=True, env={"COLUMNS": "250", "PATH": ""}, timeout=60)
    assert "the fused global and local-token score, on the same scale" in wide.stdout


def test_info_is_quick_and_imports_no_torch():
    probe = ("import sys\nfrom dmwan_qdrant.cli.app import main\ntry:\n    main(['info', '--json'])\n"
             "except SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    report, _, torch_line = r.stdout.rpartition("TORCH")
    assert torch_line.strip() == "False" and json.loads(report)["device"]["name"] in ("cpu", "cuda", "mps")
