"""Collections, points and queries in qdrant-client's own terms, laid out as ``dmwan`` lays them.

A collection created with `collection_params` is one ``dmwan`` reads (it carries the model record),
a point made by `photo_point` is the one ``dmwan ingest`` would store for that file (same id,
payload and vectors), and `rerank_query` is ``dmwan query --rerank`` in one ``query_points`` call.
The layout itself: ``docs/qdrant-client.md``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from ..point_ids import point_id, sha256_file
from ..search.reranking import DEFAULT_PREFETCH, bundle_rerank
from ..store.client import META_FORMAT, META_KEY, vectors_config
from ..store.index import IndexSettings
from ..store.records import GLOBAL, INDEXED_FIELDS, TOKENS
from .registry import lookup, register

_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def collection_params(model: str, index: IndexSettings | None = None) -> dict[str, Any]:
    """Keyword arguments of ``QdrantClient.create_collection`` for a collection of the registered
    ``model``: its two named vectors (``global``, ``tokens``), the HNSW settings and the model
    record in the collection metadata, so ``dmwan query`` and ``dmwan serve`` search it.

    Example: ``client.create_collection("shoes", **collection_params(name))``.
    """
    entry = lookup(model)
    index = index or IndexSettings()
    meta = {"format": META_FORMAT, "dim": entry.dim, "token_dim": entry.token_dim,
            "model": entry.record, "index": index.to_dict()}
    return {
        "vectors_config": vectors_config(entry.dim, entry.token_dim, index.tokens),
        "hnsw_config": qm.HnswConfigDiff(m=index.hnsw_m, ef_construct=index.ef_construct),
        "metadata": {META_KEY: meta},
    }


def collection_model(client: QdrantClient, collection: str) -> str:
    """The FastEmbed name of the model that filled ``collection`` (one ``dmwan`` made, or one
    made with `collection_params`), registered from the collection's model record: the shipped
    model or a ``hf-hub:`` bundle by name, else the recorded bundle folder if it is here.

    Raises:
        dmwan_qdrant.errors.StoreError: the collection has no ``dmwan`` model record.
        dmwan_qdrant.errors.CheckpointError: the recorded bundle is not here (register it, then
            pass its name yourself).
    """
    from ..encoder import collection_bundle
    from ..errors import StoreError

    meta = (client.get_collection(collection).config.metadata or {}).get(META_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise StoreError(f"collection '{collection}' has no dmwan model record (not made by dmwan or "
                         "collection_params)")
    record = meta["model"]
    name = register(collection_bundle(collection, record))
    if lookup(name).record.get("fingerprint") != record.get("fingerprint"):
        raise StoreError(f"collection '{collection}' was filled by other weights ({record.get('fingerprint')}) "
                         f"than {name}'s; register that bundle")
    return name


def create_collection(client: QdrantClient, name: str, model: str, index: IndexSettings | None = None) -> None:
    """`collection_params`'s collection, with the keyword payload indexes ``dmwan`` makes on a
    server (``label``, ``content_hash``, ``path``); the local mode has none and skips them."""
    client.create_collection(name, **collection_params(model, index))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the local mode warns that it ignores payload indexes
        for field in INDEXED_FIELDS:
            client.create_payload_index(name, field, field_schema=qm.PayloadSchemaType.KEYWORD, wait=True)


def _upright_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        w, h = im.size
        turned = im.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS
    return (h, w) if turned else (w, h)


def photo_point(path: str | Path, model: str, label: str | None = None, **payload: Any) -> qm.PointStruct:
    """The point ``dmwan ingest`` stores for the photo file ``path``: its id from the file's
    content (the same file is one point, wherever it lies), the payload fields ingest writes
    (``path``, ``content_hash``, ``size``, ``mtime``, ``mtime_ns``, ``width``, ``height``, and
    ``label`` when given) plus ``payload``, and both vectors as ``models.Image`` that qdrant-client
    embeds with the registered ``model`` on upsert.

    Raises:
        FileNotFoundError, PIL.UnidentifiedImageError: ``path`` is not a readable image.
    """
    file = Path(path).expanduser().resolve()
    st = file.stat()
    digest = sha256_file(file)
    width, height = _upright_size(file)
    fields: dict[str, Any] = {"path": str(file), "content_hash": digest, "size": st.st_size,
                              "mtime": st.st_mtime_ns / 1e9, "mtime_ns": st.st_mtime_ns,
                              "width": width, "height": height}
    if label is not None:
        fields["label"] = label
    fields.update(payload)
    image = str(file)
    return qm.PointStruct(
        id=point_id(digest),
        vector={
            GLOBAL: qm.Image(image=image, model=lookup(model).name, options={"domain": "photo"}),
            TOKENS: qm.Image(image=image, model=lookup(model).name, options={"domain": "photo", "output": "tokens"}),
        },
        payload=fields,
    )


def sketch_query(sketch: Any, model: str, output: str = "global") -> qm.Image:
    """A sketch (a path or a PIL image) as the query of the ``global`` vector (or, with
    ``output="tokens"``, of the ``tokens`` multivector)."""
    options = {"domain": "sketch"} if output == "global" else {"domain": "sketch", "output": output}
    return qm.Image(image=sketch, model=lookup(model).name, options=options)


def rerank_query(
    sketch: Any,
    model: str,
    prefetch: int = DEFAULT_PREFETCH,
    weight: float | None = None,
    filter: qm.Filter | None = None,
    ef: int | None = None,
) -> dict[str, Any]:
    """``dmwan query --rerank`` as keyword arguments of one ``query_points`` call: the top
    ``prefetch`` photos by global cosine, re-ordered by the fused multi-level score
    ``(cosine + w * maxsim / n) / (1 + w)`` (`dmwan_qdrant.search.reranking.fuse`; ``n`` is the
    model's token count, ``w`` the bundle's re-rank weight unless ``weight`` is given).

    Example: ``client.query_points("shoes", **rerank_query("sketch.png", name), limit=10)``.
    The scores are the fused ones ``dmwan query --rerank`` prints. ``filter`` applies to both
    stages; ``ef`` sets the HNSW search width of the first (on a server; ``dmwan`` sends the
    collection's, 128 unless chosen), and then the token stage re-scores int8 tokens with the
    originals as ``dmwan`` does.
    """
    entry = lookup(model)
    w = bundle_rerank(entry.encoder)[1] if weight is None else float(weight)
    n = float(entry.encoder.config.num_tokens)
    a, b = (0.0, 1.0 / n) if math.isinf(w) else (1.0 / (1.0 + w), w / (n * (1.0 + w)))
    glob = sketch_query(sketch, model)
    params = rescore = None
    if ef is not None:
        params = qm.SearchParams(hnsw_ef=int(ef))
        rescore = qm.SearchParams(quantization=qm.QuantizationSearchParams(rescore=True, oversampling=1.0))
    candidates = qm.Prefetch(query=glob, using=GLOBAL, filter=filter, params=params, limit=prefetch)
    tokens = qm.Prefetch(prefetch=candidates, query=sketch_query(sketch, model, "tokens"), using=TOKENS,
                         filter=filter, params=rescore, limit=prefetch)
    formula = qm.SumExpression(sum=[qm.MultExpression(mult=[a, "$score[0]"]),
                                    qm.MultExpression(mult=[b, "$score[1]"])])
    return {"prefetch": [candidates, tokens], "query": qm.FormulaQuery(formula=formula)}
