"""Fill a collection from a folder of photos and search it by sketch, with qdrant-client alone.

    python examples/upsert_and_query.py ./photos sketch.png                 # in memory
    python examples/upsert_and_query.py ./photos sketch.png --path ./qdrant-local
    python examples/upsert_and_query.py ./photos sketch.png --url http://localhost:6333

Each photo becomes the point `dmwan ingest` would store (same id, payload and vectors), so
`dmwan query` and `dmwan serve` search a server collection filled this way, and a later `dmwan
ingest` of the same folder adds nothing twice. The second search re-ranks the top 100 by the
local tokens in the same `query_points` call, as `dmwan query --rerank` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qdrant_client import QdrantClient

from dmwan_qdrant.fastembed import SHIPPED_NAME, create_collection, photo_point, register, rerank_query, sketch_query

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="a folder of photos (sub-folder names become labels)")
    parser.add_argument("sketch", help="a drawing to search with")
    parser.add_argument("--collection", default="shoes")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a Qdrant server (default: in memory)")
    where.add_argument("--path", help="a qdrant-client local-mode folder")
    parser.add_argument("--model", help="a bundle with ONNX graphs (default: the shipped dmwan-sketch)")
    args = parser.parse_args()

    name = register(args.model) if args.model else SHIPPED_NAME
    client = QdrantClient(url=args.url) if args.url else QdrantClient(path=args.path or ":memory:")
    if not client.collection_exists(args.collection):
        create_collection(client, args.collection, name)

    files = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    for start in range(0, len(files), 64):
        batch = files[start:start + 64]
        client.upsert(args.collection, [photo_point(p, name, label=p.parent.name) for p in batch])
    print(f"{client.count(args.collection).count} photos in '{args.collection}'")

    plain = client.query_points(args.collection, query=sketch_query(args.sketch, name), using="global", limit=5)
    fused = client.query_points(args.collection, **rerank_query(args.sketch, name), limit=5)
    for title, hits in (("global vector", plain), ("re-ranked by local tokens", fused)):
        print(f"{title}:")
        for rank, hit in enumerate(hits.points, 1):
            print(f"  {rank}  {hit.score:.4f}  {hit.payload['path']}")
    client.close()


if __name__ == "__main__":
    main()
