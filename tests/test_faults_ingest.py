"""Ingest faults of the smaller kind: an empty folder, a broken symlink, duplicates read again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dmwan_qdrant.encoder import load_bundle
from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.ingest import ingest
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.store import EdgeStore
from faults import make_photos


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_bundle(save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("m") / "tiny"))


def test_a_folder_without_images_creates_no_collection(tmp_path, model):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    with EdgeStore(tmp_path / "store") as store:
        with pytest.raises(UsageError, match="no image files under .*'pics' was not created"):
            ingest([tmp_path / "empty"], store, "pics", model, num_workers=0)
        assert store.list_collections() == [] and not (tmp_path / "store" / "pics").exists()


def test_an_existing_collection_accepts_an_emptied_folder(tmp_path, model):
    files = make_photos(tmp_path / "photos", 4)
    with EdgeStore(tmp_path / "store") as store:
        ingest([tmp_path / "photos"], store, "pics", model, num_workers=0)
        for f in files:
            f.unlink()
        report = ingest([tmp_path / "photos"], store, "pics", model, num_workers=0, prune=True)
        assert (report.found, report.pruned, store.count("pics")) == (0, 4, 0)


def test_a_broken_symlink_is_reported_under_its_own_path(tmp_path, model):
    files = make_photos(tmp_path / "photos", 4)
    link = tmp_path / "photos" / "class0" / "link.jpg"
    link.symlink_to(tmp_path / "elsewhere" / "gone.jpg")
    with EdgeStore(tmp_path / "store") as store:
        report = ingest([tmp_path / "photos"], store, "pics", model, num_workers=0)
    assert [p for p, _ in report.failed] == [str(link)]
    assert store is not None and len(files) == report.added


def test_known_duplicates_are_not_decoded_again(tmp_path, model):
    files = make_photos(tmp_path / "photos", 6)
    shutil.copy(files[0], tmp_path / "photos" / "class1" / "copy-a.jpg")
    shutil.copy(files[0], tmp_path / "photos" / "class0" / "copy-b.jpg")
    with EdgeStore(tmp_path / "store") as store:
        first = ingest([tmp_path / "photos"], store, "pics", model, num_workers=0)
        assert (first.added, first.duplicates, store.count("pics")) == (6, 2, 6)
        again = ingest([tmp_path / "photos"], store, "pics", model, num_workers=0)
        assert (again.decoded, again.unchanged, again.duplicates, again.added) == (0, 6, 2, 0)
        # The original goes: a duplicate takes its place, and nothing is lost or doubled.
        os.unlink(files[0])
        third = ingest([tmp_path / "photos"], store, "pics", model, num_workers=0, prune=True)
        assert (third.updated, third.duplicates, store.count("pics")) == (1, 1, 6)
        paths = {p["path"] for _, p in store.scroll_payloads("pics")}
        assert str(files[0]) not in paths and any("/copy-" in p for p in paths)
        fourth = ingest([tmp_path / "photos"], store, "pics", model, num_workers=0)
        assert (fourth.decoded, fourth.unchanged + fourth.duplicates) == (0, 7)


def test_a_broken_symlink_given_directly(tmp_path, model):
    make_photos(tmp_path / "photos", 2)
    link = tmp_path / "direct.jpg"
    link.symlink_to(tmp_path / "nowhere.jpg")
    with EdgeStore(tmp_path / "store") as store:
        report = ingest([tmp_path / "photos", link], store, "pics", model, num_workers=0)
    assert [p for p, _ in report.failed] == [str(Path(os.path.abspath(link)))]
