"""Search a collection by sketch from your own qdrant-client code, with no `dmwan` command.

    python examples/search_by_sketch.py sketch.png --collection shoes --url http://localhost:6333
    python examples/search_by_sketch.py sketch.png --collection shoes --path ./qdrant-local

The collection is one that `dmwan ingest --url URL` filled on a Qdrant server, or one that
upsert_and_query.py filled (qdrant-client's local mode, `--path`). Its model comes from the
collection's own record unless --model names a bundle.
"""

from __future__ import annotations

import argparse

from qdrant_client import QdrantClient, models

from dmwan_qdrant.fastembed import collection_model, register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sketch", help="a drawing (PNG, JPEG...)")
    parser.add_argument("--collection", default="shoes")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a Qdrant server, e.g. http://localhost:6333")
    where.add_argument("--path", help="a qdrant-client local-mode folder")
    parser.add_argument("--model", help="a bundle (default: the one the collection records)")
    args = parser.parse_args()

    client = QdrantClient(url=args.url) if args.url else QdrantClient(path=args.path)
    name = register(args.model) if args.model else collection_model(client, args.collection)
    hits = client.query_points(
        args.collection,
        query=models.Image(image=args.sketch, model=name, options={"domain": "sketch"}),
        using="global",
        limit=10,
    )
    for rank, hit in enumerate(hits.points, 1):
        print(f"{rank:>2}  {hit.score:.4f}  {hit.payload.get('path')}")
    client.close()


if __name__ == "__main__":
    main()
