"""Reading a search request off HTTP: multipart sketches, base64 sketches or a text, and the
options of `dmwan query` as query parameters or JSON fields.

Uploads are decoded here, before they reach the batch: a bad image fails its own request at once
(415, or 413 over the pixel limit) and never costs the other requests of a batch anything.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from dmwan_qdrant.errors import StoreError
from dmwan_qdrant.imageio import MAX_IMAGE_PIXELS, decode_image
from dmwan_qdrant.search.filters import INTEGER_FIELDS, parse_filters
from dmwan_qdrant.search.request import SearchRequest
from dmwan_qdrant.server.http_errors import HTTPError
from dmwan_qdrant.server.service import MAX_EF, MAX_K, MAX_PREFETCH
from dmwan_qdrant.store.checks import canonical_id
from dmwan_qdrant.store.filters import check_filter

MAX_SKETCHES = 64
"""Most sketches in one request."""
MAX_SKETCH_PIXELS = 16_000_000
"""Largest sketch accepted, in pixels (a 4000x4000 drawing); larger ones are refused with 413."""


def _int_option(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or value is None:
        raise HTTPError(422, f"{name} must be an integer from {lo} to {hi}")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise HTTPError(422, f"{name} must be an integer from {lo} to {hi}, got {value!r}") from None
    if isinstance(value, float) and value != n:
        raise HTTPError(422, f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    if not lo <= n <= hi:
        raise HTTPError(422, f"{name} must be from {lo} to {hi}, got {n}")
    return n


def _bool_option(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise HTTPError(422, f"{name} must be true or false, got {value!r}")


def _typed(key: str, value: Any) -> Any:
    """A JSON-object filter value, with strings for the integer fields read as integers (as
    ``--filter width=640`` reads them)."""
    if key not in INTEGER_FIELDS:
        return value
    if isinstance(value, list):
        return [_typed(key, v) for v in value]
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise HTTPError(400, f"bad filter {key}={value!r}: {key} takes an integer") from None
    return value


def _filters(value: Any) -> dict[str, Any] | None:
    """A store filter from ``"label=shoe"``, a list of such strings (the ``--filter`` syntax of
    `parse_filters`), or a JSON object in the store's filter structure
    (`dmwan_qdrant.store.filters`), e.g. ``{"label": ["shoe", "boot"], "width": {"gte": 640}}``.

    Raises:
        HTTPError: (400) a value of another type.
        UsageError: (400) a malformed filter.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        flt = {k: _typed(k, v) if isinstance(k, str) else v for k, v in value.items()}
        check_filter(flt)
        return flt or None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HTTPError(
            400,
            'filter must be "key=value", a list of such strings, or an object such as '
            '{"label": ["shoe", "boot"], "width": {"gte": 640}}',
        )
    return parse_filters(value) or None


def _decode_base64(index: int, text: Any, field: str = "sketches") -> bytes:
    if not isinstance(text, str):
        raise HTTPError(400, f"{field}[{index}] must be a base64 string or a data: URL")
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or ";base64" not in head:
            raise HTTPError(400, f"{field}[{index}]: a data: URL must be base64 (data:image/png;base64,...)")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(400, f"{field}[{index}] is not valid base64") from None


async def read_search(request: Request, collection: str, options: dict[str, Any]) -> SearchRequest:
    """The `SearchRequest` of an HTTP search call: the sketches or text of its body (JSON or
    multipart), and ``options`` (``k``, ``filter``, ``rerank``, ``prefetch``, ``ef``: the route's
    query parameters, already parsed) where the body does not give them. ``ef`` None (or JSON
    null) is the collection's default; ``rerank`` None (or null) the collection's model's choice.

    Raises:
        HTTPError: 400 for a malformed body, 422 for an option out of range; ImageError (415) and
            ImageTooLargeError (413) for sketches that are not images or are too large;
            UsageError (400) for a malformed filter.
    """
    options = dict(options)
    blobs: list[tuple[str, bytes]] = []
    photo_blobs: list[tuple[str, bytes]] = []
    like: list[str] = []
    text: str | None = None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=MAX_SKETCHES, max_fields=MAX_SKETCHES + 8)
        try:
            for field_name, into in (("sketch", blobs), ("photo", photo_blobs)):
                for i, part in enumerate(form.getlist(field_name)):
                    if not isinstance(part, UploadFile):
                        raise HTTPError(400, f"the {field_name} field must be a file upload")
                    into.append((part.filename or f"{field_name} {i + 1}", await part.read()))
            like = [str(v) for v in form.getlist("like")]
            for key in ("k", "rerank", "prefetch", "ef"):
                if key in form:
                    options[key] = form[key]
            if form.getlist("filter"):
                options["filter"] = [str(v) for v in form.getlist("filter")]
            if "text" in form:
                text = str(form["text"])
        finally:
            await form.close()
    elif ctype in ("application/json", ""):
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"the body is not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None
        if not isinstance(body, dict):
            raise HTTPError(400, 'give a JSON object {"sketches": [...]} or {"text": "..."}, or multipart sketch files')
        fields = ("sketches", "photos", "like", "text", "k", "filter", "rerank", "prefetch", "ef")
        unknown = sorted(set(body) - set(fields))
        if unknown:
            raise HTTPError(400, f"unknown field {unknown[0]!r} (fields: {', '.join(fields)})")
        for key in ("k", "filter", "rerank", "prefetch", "ef"):
            if key in body:
                options[key] = body[key]
        sketches = body.get("sketches")
        if sketches is not None:
            if not isinstance(sketches, list):
                raise HTTPError(400, "sketches must be a list of base64 strings")
            blobs = [(f"sketches[{i}]", _decode_base64(i, s)) for i, s in enumerate(sketches)]
        photos = body.get("photos")
        if photos is not None:
            if not isinstance(photos, list):
                raise HTTPError(400, "photos must be a list of base64 strings")
            photo_blobs = [(f"photos[{i}]", _decode_base64(i, s, "photos")) for i, s in enumerate(photos)]
        like_ids = body.get("like")
        if like_ids is not None:
            like_ids = [like_ids] if isinstance(like_ids, str) else like_ids
            if not isinstance(like_ids, list) or not all(isinstance(v, str) for v in like_ids):
                raise HTTPError(400, "like must be a point id or a list of them")
            like = list(like_ids)
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            raise HTTPError(400, "text must be a string")
    else:
        raise HTTPError(415, f"unsupported content type {ctype!r}: send application/json or multipart/form-data")

    kinds = [k for k, given in (("sketches", blobs), ("text", text is not None), ("photos", photo_blobs),
                                ("like", like)) if given]
    if len(kinds) > 1:
        raise HTTPError(400, f"give one kind of query at a time, not {' and '.join(kinds)}")
    if not kinds:
        raise HTTPError(400, 'no sketch given: send multipart files named "sketch", or JSON {"sketches": [...]}, '
                             '{"text": "..."}, {"photos": [...]} or {"like": [...]}')
    count = len(blobs) + len(photo_blobs) + len(like)
    if count > MAX_SKETCHES:
        raise HTTPError(413, f"at most {MAX_SKETCHES} queries in one request, got {count}")
    try:
        like = [canonical_id(v) for v in like]
    except StoreError:
        raise HTTPError(400, "like takes point ids (UUIDs, as the results' id field gives them)") from None
    if text is not None and not text.strip():
        raise HTTPError(400, "the text query is empty")
    k = _int_option("k", options["k"], 1, MAX_K)
    prefetch = _int_option("prefetch", options["prefetch"], 1, MAX_PREFETCH)
    ef = options.get("ef")
    ef = None if ef is None else _int_option("ef", ef, 1, MAX_EF)
    rerank = None if options.get("rerank") is None else _bool_option("rerank", options["rerank"])
    flt = _filters(options["filter"])
    limit = min(MAX_SKETCH_PIXELS, MAX_IMAGE_PIXELS)
    # Off the event loop: a large PNG takes a while to decode.
    def decode(items: list[tuple[str, bytes]]) -> list[Any]:
        return [decode_image(data, name, max_pixels=limit) for name, data in items]

    images, photo_images = await asyncio.to_thread(lambda: (decode(blobs), decode(photo_blobs)))
    return SearchRequest(collection, images, text, k, flt, False if text is not None else rerank, prefetch,
                         photo_images, like, ef)
