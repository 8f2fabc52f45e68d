"""The FastEmbed model classes of registered bundles, added to FastEmbed's registries on import.

`DmwanImageEmbedding` is an image model of FastEmbed's `ImageEmbedding` (so of qdrant-client's
``models.Image``) and `DmwanTextEmbedding` a text model of its `TextEmbedding` (``models.Document``,
bundles with a text tower only). qdrant-client hands a call's ``options`` to the constructor:

* ``domain``: ``"photo"`` (the default) or ``"sketch"``: which tower embeds the image;
* ``output``: ``"global"`` (the default; the collection's ``global`` vector) or ``"tokens"`` (the
  local tokens, a multivector for the collection's ``tokens`` vector).

Images are read and preprocessed as the ``dmwan`` command reads them (`dmwan_qdrant.imageio`,
`dmwan_qdrant.model.imageprep`): EXIF orientation, a white background under transparency, photos
decoded as ingest decodes them and sketches as a query does, then the bundle's own resize. So a
vector equals the one ``dmwan ingest`` stores or ``dmwan query`` searches with.

This relies on FastEmbed's registry lists (``EMBEDDINGS_REGISTRY``) and the constructor keywords
qdrant-client passes, which are FastEmbed internals: the extra pins FastEmbed's minor versions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastembed import ImageEmbedding, TextEmbedding
from fastembed.common.model_description import DenseModelDescription, ModelSource
from fastembed.image.image_embedding_base import ImageEmbeddingBase
from fastembed.text.text_embedding_base import TextEmbeddingBase
from PIL import Image, ImageOps

from ..imageio import load_image, to_rgb
from .registry import DOMAINS, OUTPUTS, Registered, lookup, registered


def _description(entry: Registered, text: bool) -> DenseModelDescription:
    graph = entry.encoder.manifest["graphs"]["text" if text else "visual"]
    what = "text tower" if text else "image towers (options: domain=photo|sketch, output=global|tokens)"
    return DenseModelDescription(
        model=entry.name,
        dim=entry.dim,
        description=f"DMWAN sketch-based image retrieval, {what}: {entry.record.get('preset')} "
                    f"{entry.record.get('fingerprint')}",
        license=f"see the model card: dmwan model info {entry.folder}",
        size_in_GB=round(int(graph.get("bytes", 0)) / 1e9, 4),
        sources=ModelSource(url=entry.folder.as_uri()),
        model_file=f"onnx/{graph['file']}",
    )


def _device(providers: Sequence[Any] | None, cuda: Any, device_id: int | None, device_ids: list[int] | None) -> str:
    """The `OnnxEncoder` device for FastEmbed's ``providers`` / ``cuda`` / ``device_id(s)`` arguments."""
    if device_id is None and device_ids:
        device_id = device_ids[0]
    names = [p[0] if isinstance(p, tuple) else str(p) for p in providers or ()]
    wants_cuda = any("CUDA" in n for n in names) if names else cuda is True or str(cuda).endswith("CUDA")
    if not wants_cuda:
        return "cpu"
    return f"cuda:{device_id}" if device_id is not None else "cuda"


def _bundle_encoder(model_name: str, threads: int | None, providers: Sequence[Any] | None, cuda: Any,
                    device_id: int | None, device_ids: list[int] | None) -> tuple[Registered, Any]:
    """The registered bundle ``model_name`` and its shared encoder on the device and threads that
    FastEmbed's constructor arguments ask for."""
    entry = lookup(model_name)
    return entry, entry.encoder_for(_device(providers, cuda, device_id, device_ids), threads)


def _check(option: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"options {option}={value!r} is not one of {', '.join(allowed)}")
    return str(value)


class _LastBatch:
    """The embeddings of the last batch of files, so that the ``global`` and ``tokens`` vectors of
    one upsert (two FastEmbed instances, one call each) cost one forward pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._value: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def key(images: Sequence[Any], domain: str, encoder: Any) -> tuple | None:
        parts: list[Any] = [domain, id(encoder)]
        for im in images:
            if not isinstance(im, (str, Path)):
                return None  # only files have an identity to compare
            try:
                st = os.stat(im)
            except OSError:
                return None
            parts.append((os.path.abspath(im), st.st_size, st.st_mtime_ns))
        return tuple(parts)

    def get(self, key: tuple | None) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            return self._value if key is not None and key == self._key else None

    def put(self, key: tuple | None, value: tuple[np.ndarray, np.ndarray]) -> None:
        if key is not None:
            with self._lock:
                self._key, self._value = key, value


_LAST = _LastBatch()


def read_image(image: Any, domain: str, size: int) -> Image.Image:
    """An image input (a path or a PIL image) as upright RGB, the way ``dmwan`` reads it: a photo
    file as ingest decodes it (a large JPEG at a reduced scale), a sketch file as a query does.

    Raises:
        dmwan_qdrant.errors.ImageError: a file that gives no image (one line naming it).
    """
    if isinstance(image, Image.Image):
        return to_rgb(ImageOps.exif_transpose(image) or image)
    return load_image(image, min_side=size if domain == "photo" else None)


def embed_images(encoder: Any, images: Sequence[Any], domain: str) -> tuple[np.ndarray, np.ndarray]:
    """Global vectors (B, D) and tokens (B, n, d) of ``images`` (paths or PIL) in ``domain``."""
    key = _LastBatch.key(images, domain, encoder)
    cached = _LAST.get(key)
    if cached is not None:
        return cached
    size = int(encoder.config.image_size)
    prep = encoder.transform(domain)
    batch = np.stack([prep(read_image(im, domain, size)) for im in images])
    emb = encoder.embed_photos(batch) if domain == "photo" else encoder.embed_sketches(batch)
    value = (np.asarray(emb.global_, dtype=np.float32), np.asarray(emb.tokens, dtype=np.float32))
    _LAST.put(key, value)
    return value


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class DmwanImageEmbedding(ImageEmbeddingBase):
    """A registered bundle's photo and sketch towers as a FastEmbed image model.

    Args:
        model_name: the name `dmwan_qdrant.fastembed.register` returned.
        threads: intra-op threads of the ONNX session (None: onnxruntime's default).
        providers / cuda / device_id: where it runs (CPU unless CUDA is asked for).
        domain: ``"photo"`` or ``"sketch"``.
        output: ``"global"`` (vectors of ``dim``) or ``"tokens"`` (``(n, token_dim)`` arrays).
    """

    def __init__(
        self,
        model_name: str,
        cache_dir: str | None = None,
        threads: int | None = None,
        providers: Sequence[Any] | None = None,
        cuda: Any = False,
        device_ids: list[int] | None = None,
        lazy_load: bool = False,
        device_id: int | None = None,
        domain: str = "photo",
        output: str = "global",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("specific_model_path", None)  # a registered bundle is its own folder
        super().__init__(model_name, cache_dir, threads, **kwargs)
        self.domain = _check("domain", domain, DOMAINS)
        self.output = _check("output", output, OUTPUTS)
        self.entry, self.encoder = _bundle_encoder(model_name, threads, providers, cuda, device_id, device_ids)
        if not lazy_load:
            self.encoder.session("visual")

    @classmethod
    def _list_supported_models(cls) -> list[DenseModelDescription]:
        return [_description(e, text=False) for e in registered()]

    @classmethod
    def get_embedding_size(cls, model_name: str) -> int:
        return lookup(model_name).dim

    @property
    def embedding_size(self) -> int:
        return self.entry.dim if self.output == "global" else self.entry.token_dim

    def embed(
        self, images: Any, batch_size: int = 16, parallel: int | None = None, **kwargs: Any
    ) -> Iterable[np.ndarray]:
        """One array per image: its global vector (D,) or its tokens (n, d), L2-normalised.

        ``parallel`` is accepted and ignored: the session already runs on every core.
        """
        if isinstance(images, (str, Path, Image.Image)):
            images = [images]
        for batch in _batches(images, max(1, int(batch_size))):
            vectors, tokens = embed_images(self.encoder, batch, self.domain)
            yield from (vectors if self.output == "global" else tokens)


class DmwanTextEmbedding(TextEmbeddingBase):
    """A registered bundle's text tower (CLIP-based presets) as a FastEmbed text model: texts
    embed into the photos' ``global`` space."""

    def __init__(
        self,
        model_name: str,
        cache_dir: str | None = None,
        threads: int | None = None,
        providers: Sequence[Any] | None = None,
        cuda: Any = False,
        device_ids: list[int] | None = None,
        lazy_load: bool = False,
        device_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("specific_model_path", None)  # a registered bundle is its own folder
        super().__init__(model_name, cache_dir, threads, **kwargs)
        if not lookup(model_name).has_text:
            raise ValueError(f"{model_name} has no text tower, so it cannot embed text")
        self.entry, self.encoder = _bundle_encoder(model_name, threads, providers, cuda, device_id, device_ids)

    @classmethod
    def _list_supported_models(cls) -> list[DenseModelDescription]:
        return [_description(e, text=True) for e in registered() if e.has_text]

    @classmethod
    def get_embedding_size(cls, model_name: str) -> int:
        return lookup(model_name).dim

    @property
    def embedding_size(self) -> int:
        return self.entry.dim

    def embed(
        self, documents: str | Iterable[str], batch_size: int = 256, parallel: int | None = None, **kwargs: Any
    ) -> Iterable[np.ndarray]:
        """One L2-normalised vector (D,) per text."""
        if isinstance(documents, str):
            documents = [documents]
        for batch in _batches(documents, max(1, int(batch_size))):
            yield from np.asarray(self.encoder.embed_texts(batch), dtype=np.float32)


def install() -> None:
    """Add the classes to FastEmbed's registries (once)."""
    if DmwanImageEmbedding not in ImageEmbedding.EMBEDDINGS_REGISTRY:
        ImageEmbedding.EMBEDDINGS_REGISTRY.append(DmwanImageEmbedding)
    if DmwanTextEmbedding not in TextEmbedding.EMBEDDINGS_REGISTRY:
        TextEmbedding.EMBEDDINGS_REGISTRY.append(DmwanTextEmbedding)


install()
