"""Fetching pretrained weights from the Hugging Face Hub: fast and quiet when it cannot be reached.

Without a network, huggingface_hub retries every request with back-off and logs each try, so a
missing download took 50 s and 46 lines before its error. Here a weights download first looks in
the hub's cache and asks once, with a short timeout, whether the Hub answers at all: when the
file is not cached and the Hub is out of reach, the error comes at once, naming the file to
fetch and the ``--pretrained PATH`` to pass. A download that goes ahead runs with the hub's
and open_clip's log lines silenced (its errors still become ours).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from urllib.parse import urlparse

from ..errors import WeightsUnavailableError

PROBE_TIMEOUT_S = 3.0
"""How long the one connection attempt to the Hub may take."""


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout`` (False when offline mode is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return False
    url = urlparse(hub_endpoint())
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_file(repo: str, names: Sequence[str]) -> str | None:
    """The path of the first of ``names`` in ``repo`` that the hub's cache holds, or None."""
    from huggingface_hub import try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return found
    return None


@contextlib.contextmanager
def hub_download(what: str, repo: str, names: Sequence[str], flag: str = "--pretrained") -> Iterator[None]:
    """Around a library call that downloads ``names[0]`` (or an alternative of ``names``) from
    ``repo``: fail at once when it is neither cached nor reachable, else run the call quietly
    (offline mode on when only the cache can serve it).

    Raises:
        WeightsUnavailableError: not cached and the Hub out of reach, in one line that names
            ``{endpoint}/{repo}/resolve/main/{names[-1]}`` and ``flag PATH``.
    """
    from huggingface_hub import constants

    cached = cached_file(repo, names)
    online = cached is None and hub_reachable()
    if cached is None and not online:
        file = names[-1]
        raise WeightsUnavailableError(
            f"cannot fetch {what}: the Hugging Face Hub cannot be reached and the file is not cached; "
            f"download {hub_endpoint()}/{repo}/resolve/main/{file} on a machine with internet access "
            f"and pass {flag} /path/to/{file}"
        )
    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = offline or not online  # the cache serves it: no request, no retries
    logging.disable(logging.ERROR)  # the hub's retry lines and open_clip's own error line
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        constants.HF_HUB_OFFLINE = offline
