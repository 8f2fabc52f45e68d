"""Serving sketch search over HTTP: the app (`dmwan_qdrant.server.app`), the service it fronts
(`dmwan_qdrant.server.service`), the address a running server leaves beside its store
(`dmwan_qdrant.server.discovery`) and the client the CLI reaches it with
(`dmwan_qdrant.server.client`).

Importing this package loads nothing heavy: the CLI's client side needs neither FastAPI nor torch.
"""
