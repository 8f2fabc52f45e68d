"""Contact sheets: a PNG showing a query (sketch or text) next to its ranked results.

Each result cell carries its rank, score and label (or file name), so a sheet reads on its own
in a bug report or a review. Pillow only.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .errors import ImageError
from .imageio import load_image
from .search.results import Result

BACKGROUND = (255, 255, 255)
PANEL = (236, 238, 242)
QUERY_PANEL = (255, 244, 214)
INK = (20, 20, 20)
MUTED = (95, 99, 110)
MISSING = (200, 200, 200)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # scalable font when Pillow has FreeType
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _fit(text: str, font, width: int, draw: ImageDraw.ImageDraw) -> str:
    """``text`` cut with an ellipsis in the middle so that it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 3:
        keep -= 1
        head = (keep + 1) // 2
        cut = text[:head] + "…" + text[len(text) - (keep - head) :]
        if draw.textlength(cut, font=font) <= width:
            return cut
    return "…"


def _thumbnail(path: str | Path | Image.Image | None, size: int) -> Image.Image:
    """The image at ``path`` (or the image itself) shrunk into a ``size`` square on a light
    panel, or a placeholder."""
    cell = Image.new("RGB", (size, size), PANEL)
    if path is None:
        return cell
    try:
        img = path if isinstance(path, Image.Image) else load_image(path)
    except ImageError:
        draw = ImageDraw.Draw(cell)
        draw.line((0, 0, size, size), fill=MISSING, width=2)
        draw.line((0, size, size, 0), fill=MISSING, width=2)
        draw.text((size // 2, size // 2), "unreadable", fill=MUTED, font=_font(max(10, size // 12)), anchor="mm")
        return cell
    # Up or down: small photos are scaled up too, so every cell reads at the same size.
    img = ImageOps.contain(img, (size, size), Image.Resampling.LANCZOS)
    cell.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return cell


def render_query(
    query: str | Path | tuple[str, Image.Image],
    results: Sequence[Result],
    thumb: int = 160,
    columns: int = 5,
    is_text: bool = False,
) -> Image.Image:
    """One block: the query (a sketch file, ``(name, image)`` for one read from elsewhere, or a
    text when ``is_text``) then its results in a grid of ``columns``, each labelled ``#rank score``
    and label or file name."""
    name, picture = query if isinstance(query, tuple) else (str(query), query)
    pad, caption = max(6, thumb // 20), max(12, thumb // 9)
    font, small = _font(caption), _font(max(10, caption - 2))
    line = caption + 4
    cell_w, cell_h = thumb + pad, thumb + 2 * line + pad
    cols = max(1, min(columns, len(results)))
    rows = max(1, -(-len(results) // cols))
    width = pad + (thumb + 2 * pad) + cols * cell_w + pad
    height = pad + rows * cell_h + pad
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    # The query, on a tinted panel so it never reads as a result.
    draw.rectangle((pad // 2, pad // 2, thumb + 2 * pad + pad // 2, height - pad // 2), fill=QUERY_PANEL)
    if is_text:
        chars = max(8, int(thumb / (caption * 0.55)))
        wrapped = "\n".join(textwrap.wrap(f"“{name}”", chars)[:8])
        draw.multiline_text((pad * 2, pad + line), wrapped, fill=INK, font=font, spacing=4)
    else:
        sheet.paste(_thumbnail(picture, thumb), (pad * 2 - pad // 2, pad))
        draw.text((pad * 2, pad + thumb + 2), _fit(Path(name).name, small, thumb, draw), fill=INK, font=small)
    draw.text((pad * 2, height - pad - line), "query", fill=MUTED, font=small)

    x0 = pad + thumb + 2 * pad + pad
    for i, r in enumerate(results):
        x, y = x0 + (i % cols) * cell_w, pad + (i // cols) * cell_h
        sheet.paste(_thumbnail(r.path or None, thumb), (x, y))
        draw.text((x, y + thumb + 2), f"#{r.rank}  {r.score:.3f}", fill=INK, font=font)
        name = f"{r.label} · {Path(r.path).name}" if r.label else Path(r.path).name
        draw.text((x, y + thumb + 2 + line), _fit(str(name), small, thumb, draw), fill=MUTED, font=small)
    if not results:
        draw.text((x0, pad + thumb // 2), "no results", fill=MUTED, font=font)
    return sheet


def contact_sheet(
    sketch_path: str | Path,
    results: Sequence[Result],
    out_path: str | Path,
    thumb: int = 160,
    columns: int = 5,
) -> Path:
    """Write a PNG of ``sketch_path`` and its ranked ``results``; returns ``out_path``."""
    return contact_sheets([(sketch_path, results)], out_path, thumb, columns)


def contact_sheets(
    queries: Sequence[tuple[str | Path | tuple[str, Image.Image], Sequence[Result]]],
    out_path: str | Path,
    thumb: int = 160,
    columns: int = 5,
    is_text: bool = False,
) -> Path:
    """Write one image with a block per query (stacked top to bottom); returns ``out_path``.

    The format is the one the file name asks for (``.png``, ``.jpg``/``.jpeg``, ``.webp``); a name
    without a known image suffix gets PNG.
    """
    blocks = [render_query(q, res, thumb, columns, is_text) for q, res in queries]
    gap = max(4, thumb // 40)
    width = max(b.width for b in blocks)
    height = sum(b.height for b in blocks) + gap * (len(blocks) - 1)
    sheet = Image.new("RGB", (width, height), (210, 212, 218))
    y = 0
    for b in blocks:
        sheet.paste(b, (0, y))
        y += b.height + gap
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = SHEET_FORMATS.get(out.suffix.lower(), "PNG")
    sheet.save(out, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return out


#: Contact-sheet formats by file suffix.
SHEET_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
