"""The parts the shipped sketch model is built from: icon-set class names, pseudo-sketches, a
folder's own validation classes, float16 bundles and float16-stored ONNX graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from dmwan_qdrant.data import load_benchmark
from dmwan_qdrant.data.iconsets import concept, icon_svg
from dmwan_qdrant.data.pseudosketch import colour_edges, pseudo_sketch
from dmwan_qdrant.errors import UsageError


@pytest.mark.parametrize("icon, thing", [
    ("truck-2", "truck"), ("truck-flat", "truck"), ("add-circle-24-regular", "add_circle"),
    ("3d-coordinate-axis-remix", "3d_coordinate_axis"), ("accounting-calculator-1", "accounting_calculator"),
    ("Hot Air Balloon", "hot_air_balloon"), ("42", "42"),
])
def test_one_thing_is_one_class_across_sets_and_styles(icon, thing):
    assert concept(icon) == thing


def test_icon_svg_follows_aliases_and_draws_current_colour_black():
    icon_set = {"width": 24, "height": 24, "icons": {"cup": {"body": '<path fill="currentColor" d="M0 0h4v4z"/>'}},
                "aliases": {"mug": {"parent": "cup"}}}
    svg = icon_svg(icon_set, "mug")
    assert 'viewBox="0 0 24 24"' in svg and 'fill="#000"' in svg and "currentColor" not in svg


def _flat_picture() -> Image.Image:
    """A red disc with a black outline and a blue square inside it (both lighter than a stroke), on white."""
    im = Image.new("RGB", (96, 96), "white")
    d = ImageDraw.Draw(im)
    d.ellipse((10, 10, 86, 86), fill=(220, 40, 40), outline=(0, 0, 0), width=4)
    d.rectangle((38, 38, 58, 58), fill=(70, 110, 230))
    return im


def test_a_pseudo_sketch_keeps_outlines_and_fill_borders_and_leaves_fills_white():
    sketch = np.asarray(pseudo_sketch(_flat_picture()).convert("L"))
    assert sketch.shape == (96, 96)
    assert sketch[48, 12] < 128  # the black outline is a line
    assert sketch[38, 48] < 128 or sketch[37, 48] < 128  # the border between red and blue
    assert sketch[25, 48] > 128 and sketch[48, 48] > 128  # inside the fills: paper
    assert sketch[2, 2] > 128  # the background: paper
    assert (sketch < 128).mean() < 0.25


def test_colour_edges_see_borders_that_grey_levels_would_miss():
    im = Image.new("RGB", (40, 40), (200, 60, 60))
    ImageDraw.Draw(im).rectangle((20, 0, 39, 39), fill=(60, 140, 60))  # about the same luminance
    edges = colour_edges(im)
    assert edges[:, 19:21].mean() > 0.2 and edges[:, :10].max() < 0.01


def test_transparent_pictures_are_drawn_on_white():
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((5, 5, 35, 35), fill=(255, 200, 0, 255))
    sketch = np.asarray(pseudo_sketch(im).convert("L"))
    assert sketch[1, 1] == 255 and sketch[20, 20] == 255 and (sketch < 128).any()


def _folder(root, classes, validation=None):
    for c in classes:
        for domain in ("photo", "sketch"):
            (root / domain / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), "white").save(root / domain / c / "0.png")
    (root / "zeroshot").mkdir()
    (root / "zeroshot" / "unseen_classes.txt").write_text("e\n")
    if validation is not None:
        (root / "zeroshot" / "validation_classes.txt").write_text("".join(c + "\n" for c in validation))


def test_a_folder_lists_its_own_validation_classes(tmp_path):
    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.data import prepare_split

    _folder(tmp_path, "abcde", validation=["b", "c", "zz"])  # a class it does not have is ignored
    cfg = TrainConfig.from_file("folder_efficientnet").with_overrides(data={"name": "folder", "root": str(tmp_path), "validation": 0.5})
    split = prepare_split(cfg)
    assert split.validation_classes == ["b", "c"]
    assert split.seen_classes == ["a", "d"] and split.unseen_classes == ["e"]
    assert {s.label for s in split.train_photos} == {"a", "d"}


def test_a_validation_list_must_leave_two_classes_to_train(tmp_path):
    _folder(tmp_path, "abcde")
    split = load_benchmark("folder", tmp_path)
    with pytest.raises(UsageError, match="fewer than 2"):
        split.hold_out(["a", "b", "c"])


def test_a_float16_bundle_is_half_the_size_and_loads_as_float32(tmp_path, tiny_model):
    from dmwan_qdrant.model import load_model, save_model

    full = save_model(tiny_model, tmp_path / "fp32")
    half = save_model(tiny_model, tmp_path / "fp16", dtype=torch.float16)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded = load_model(half)
    tiny_model.eval()
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(2, 3, tiny_model.config.image_size, tiny_model.config.image_size)
    with torch.inference_mode():
        a = tiny_model.encode(x, torch.tensor([0, 1]))[0]
        b = loaded.encode(x, torch.tensor([0, 1]))[0]
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.999


def test_float16_stored_graphs_are_half_the_size_and_give_the_same_vectors(tmp_path, tiny_model):
    pytest.importorskip("onnxruntime")
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.model import save_model
    from dmwan_qdrant.runtime import as_array
    from dmwan_qdrant.runtime.export import export_onnx

    bundle = save_model(tiny_model, tmp_path / "b", dtype=torch.float16)
    full = export_onnx(bundle, tmp_path / "fp32")
    half = export_onnx(bundle, tmp_path / "fp16", quantize="float16")
    assert half.graphs["visual"] < 0.6 * full.graphs["visual"] and half.worst_cosine > 0.9999
    images = [_flat_picture(), Image.new("RGB", (50, 30), (10, 200, 90))]
    torch_vectors = as_array(load_bundle(bundle, "cpu", "torch").embed_photos(images).global_)
    onnx_vectors = as_array(load_bundle(tmp_path / "fp16", "cpu", "onnx").embed_photos(images).global_)
    assert (torch_vectors * onnx_vectors).sum(1).min() > 0.9999


def test_knowledge_preservation_keeps_photos_near_the_starting_model(random_batch):
    """The preservation term is zero for the starting weights, grows as the photo embeddings
    move away from them, trains the student only, and leaves the teacher out of the bundle."""
    from dmwan_qdrant.model import create_model

    model = create_model("tiny", overrides={"preserve_weight": 1.0}, seed=0)
    model.set_class_names(["cat", "dog", "car", "house"])
    model.attach_teacher(model)
    model.eval()  # batch statistics aside, the student is the teacher
    batch = random_batch()
    out = model(**batch)
    assert out["loss_preserve"].item() == pytest.approx(0.0, abs=1e-5)
    with torch.no_grad():
        model.global_head.weight.add_(0.5 * torch.randn_like(model.global_head.weight))
    out = model(**batch)
    assert out["loss_preserve"].item() > 0.01
    out["loss"].backward()
    assert model.global_head.weight.grad is not None
    assert all(p.grad is None for p in model._teacher.parameters())
    assert not any(k.startswith("_teacher") for k in model.state_dict())
    plain = create_model("tiny", seed=0)
    plain.set_class_names(["cat", "dog", "car", "house"])
    assert "loss_preserve" not in plain(**random_batch())  # off unless preserve_weight is set


def test_fine_tuning_a_sentence_anchored_bundle_without_the_encoder_takes_random_proxies(monkeypatch):
    from dmwan_qdrant.model import get_preset, sentence

    config = get_preset("efficientnet_lite0").with_overrides({"semantic_anchors": "sentence"})
    monkeypatch.setattr(sentence, "sentence_available", lambda: False)
    changed, note = sentence.finetune_anchors(config)
    assert changed.semantic_anchors == "random" and changed.embed_dim == config.embed_dim
    assert "random proxies" in note and sentence.SENTENCE_PACKAGE in note
    monkeypatch.setattr(sentence, "sentence_available", lambda: True)
    assert sentence.finetune_anchors(config) == (config, None)
    plain = get_preset("efficientnet_lite0").with_overrides({"semantic_anchors": "random"})
    monkeypatch.setattr(sentence, "sentence_available", lambda: False)
    assert sentence.finetune_anchors(plain) == (plain, None)


def _catalogue(path, licence_text):
    import io
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("LICENSE.TXT", licence_text)
        z.writestr("PluginFurnitureCatalog.properties",
                   "# a catalogue\nname#1=Folding chair\ncategory#1=Kitchen\nicon#1=/icons/chair.png\n"
                   "name#2=Caf\\u00e9 table\nicon#2=/icons/table.png\nname#3=Lost piece\nicon#3=/icons/gone.png\n")
        for name, colour in (("chair", (200, 30, 30, 255)), ("table", (30, 30, 200, 255))):
            image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
            ImageDraw.Draw(image).rectangle((4, 4, 11, 11), fill=colour)
            buf = io.BytesIO()
            image.save(buf, "PNG")
            z.writestr(f"icons/{name}.png", buf.getvalue())


def test_furniture_pieces_come_named_on_white_with_their_licence(tmp_path):
    from dmwan_qdrant.data import furniture

    folder = tmp_path / "usr" / "share" / "sweethome3d" / "furniture"
    folder.mkdir(parents=True)
    _catalogue(folder / "Shop.sh3f", "under ... http://creativecommons.org/licenses/by/3.0/us/ ...")
    pieces = furniture.furniture_pieces(tmp_path)
    assert [(p.name, p.category, p.licence) for p in pieces] == [
        ("Folding chair", "Kitchen", "CC-BY-3.0-US"), ("Café table", "", "CC-BY-3.0-US")]  # no icon, no piece
    pixels = np.asarray(pieces[0].image)
    assert pieces[0].image.mode == "RGB" and tuple(pixels[0, 0]) == (255, 255, 255)  # transparent -> white
    assert tuple(pixels[8, 8]) == (200, 30, 30) and pieces[0].source == "Shop.sh3f:icons/chair.png"
    assert furniture.licence_line("see http://creativecommons.org/licenses/by/3.0/") == "CC-BY-3.0"
    assert furniture.licence_line("http://creativecommons.org/choose/zero/") == "CC0-1.0"


@pytest.mark.parametrize("name, known, label", [
    ("Coffee machine", {"coffee_machine", "machine"}, "coffee_machine"),  # the whole name first
    ("Folding chair", {"chair"}, "chair"),  # else the head noun
    ("TV 16:9", {"tv"}, "tv"), ("Peugeot 308 CC", {"cc"}, None),  # too short a head to trust
    ("Yucca", {"chair"}, None)])
def test_a_piece_is_the_class_its_name_or_head_noun_names(name, known, label):
    from dmwan_qdrant.data.furniture import piece_class

    assert piece_class(name, known) == label


def test_art4apps_pictures_are_read_by_topic_and_leave_the_verbs_out(tmp_path):
    from dmwan_qdrant.data import art4apps

    for topic, word in (("animals", "bear"), ("food", "cheese"), ("actions", "clap")):
        path = tmp_path / art4apps.FOLDER / topic / f"{word}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), (180, 120, 60)).save(path)
    pictures = art4apps.pictures(tmp_path)
    assert [(p.word, p.topic) for p in pictures] == [("bear", "animals"), ("cheese", "food")]
    assert pictures[0].image.mode == "RGB" and pictures[0].source.endswith("art4apps/animals/bear.jpg")


def test_an_ink_outline_keeps_the_dark_strokes_and_whitens_the_shaded_fills():
    from dmwan_qdrant.data.art4apps import ink_outline

    image = Image.new("RGB", (32, 32), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 4, 27, 27), fill=(200, 120, 40), outline=(20, 15, 10), width=2)  # an inked, filled shape
    draw.rectangle((12, 12, 16, 16), fill=(150, 90, 30))  # shading, darker than the fill, lighter than ink
    lines = np.asarray(ink_outline(image).convert("L"))
    assert lines[4, 16] == 0 and lines[16, 4] == 0  # the ink
    assert lines[14, 14] == 255 and lines[20, 20] == 255 and lines[0, 0] == 255  # shading, fill, paper


@pytest.mark.parametrize("word, known, label", [
    ("bananas", {"banana"}, "banana"), ("blackberries", {"blackberry"}, "blackberry"),
    ("boxes", {"box"}, "box"), ("glasses", {"glass"}, "glasses"),  # eyewear is not a drinking glass
    ("bananas", set(), "bananas"), ("baby_rabbit", {"rabbit"}, "baby_rabbit")])  # a class of its own
def test_a_word_is_the_class_it_or_its_singular_names(word, known, label):
    from dmwan_qdrant.data.art4apps import picture_class

    assert picture_class(word, known) == label
