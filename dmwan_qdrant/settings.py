"""Names and defaults that the fronts share (the CLI, `dmwan serve`, the Ray Serve app): the
environment variables they read or name in their help, and the search server's defaults.

This module imports nothing, so that the CLI's help can use it without loading anything else.
"""

from __future__ import annotations

ENV_DMWAN_API_KEY = "DMWAN_API_KEY"
"""The search server's API key: the key `dmwan serve` and a Ray Serve replica require when none
is given, and the one `dmwan query` and `dmwan ingest` send to a `dmwan serve` that holds the store."""

ENV_DMWAN_INGEST_KEY = "DMWAN_INGEST_KEY"
"""The search server's write key: the key `dmwan serve` takes for `POST /collections/NAME/ingest`
when no ``--ingest-key`` is given (it reads only under ``--ingest-root`` folders). The search key
never writes."""

ENV_STORE = "DMWAN_STORE"
"""The embedded store folder the commands open when no ``--store`` or ``--url`` says otherwise."""

ENV_COLLECTION = "DMWAN_COLLECTION"
"""The collection `dmwan query` searches when no ``--collection`` names one (else the store's only
one; `dmwan_qdrant.store.choose_collection`)."""

ENV_QDRANT_URL = "QDRANT_URL"
"""A Qdrant server to use instead of the embedded store (``--url`` and ``--store`` win over it)."""

ENV_QDRANT_API_KEY = "QDRANT_API_KEY"
"""The Qdrant server's API key, when none is given."""

DEFAULT_HOST = "127.0.0.1"
"""The address `dmwan serve` listens on: this machine only."""

DEFAULT_PORT = 8000
"""The port `dmwan serve` listens on."""

DEFAULT_MAX_UPLOAD_MB = 4.0
"""The largest request body the search server takes, in megabytes."""

DEFAULT_MAX_BATCH = 16
"""Most search requests in one forward pass of the encoder."""

DEFAULT_WAIT_S = 0.002
"""How long a search request waits for others to share its forward pass, in seconds."""
