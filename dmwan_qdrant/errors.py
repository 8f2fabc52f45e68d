"""Errors a user can meet, each with the exit code the CLI returns for it.

The library raises these; the CLI prints ``str(error)`` on one line and exits with
``error.exit_code``. Anything else escaping is a bug.
"""

from __future__ import annotations


class DmwanError(Exception):
    """Base class of every error this project raises on purpose."""

    exit_code: int = 1


class UsageError(DmwanError):
    """Bad arguments or options that argument parsing alone could not catch."""

    exit_code = 2


class ImageError(DmwanError):
    """An image that cannot be read: missing, truncated, not an image, too large."""

    exit_code = 3


class ImageTooLargeError(ImageError):
    """An image over the pixel limit: a decompression bomb, or just too big to take."""


class DatasetError(DmwanError):
    """A dataset root that is missing or does not have the expected layout."""

    exit_code = 4


class ModelError(DmwanError):
    """A model that cannot be built: unknown preset, bad config."""

    exit_code = 5


class WeightsUnavailableError(ModelError):
    """Pretrained weights that cannot be reached (no internet, no local file)."""


class CheckpointError(ModelError):
    """A model bundle that is missing, corrupted, truncated or inconsistent."""


class StoreError(DmwanError):
    """Base class of vector-store errors."""

    exit_code = 6


class StoreInUseError(StoreError):
    """An embedded store already opened by another process."""

    exit_code = 7


class StoreServedError(StoreInUseError):
    """An embedded store held by a running `dmwan serve`, which searches can go through.

    Attributes:
        url: the server's base URL.
        pid: its process id.
        auth: whether it requires an API key.
        ingest_token: what lets `dmwan ingest` add photos through it (None: the API key only).
        collections: the collections it serves, as its address file lists them.
    """

    def __init__(self, message: str, url: str, pid: int, auth: bool, ingest_token: str | None = None,
                 collections: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.url = url
        self.pid = pid
        self.auth = auth
        self.ingest_token = ingest_token
        self.collections = tuple(collections)


class CollectionNotFoundError(StoreError):
    """A collection that does not exist."""

    exit_code = 8


class ModelMismatchError(StoreError):
    """A collection filled by another model than the one asked to read or write it."""

    exit_code = 9


class ServerUnavailableError(StoreError):
    """A Qdrant server that does not answer, refuses the credentials, or keeps failing."""

    exit_code = 10


class StoreDamagedError(StoreError):
    """A collection whose files are damaged or incomplete (see ``dmwan collections check``)."""

    exit_code = 12


class DiskFullError(StoreError):
    """Too little free space to write safely; what was stored before stays, re-running resumes."""

    exit_code = 13


class PhotosMissingError(DmwanError):
    """Stored photos that cannot be embedded again (file gone or changed): a reindex refuses to
    leave their points out unless told to, and changes nothing."""

    exit_code = 14


class Interrupted(DmwanError):
    """The run was stopped by SIGINT (Ctrl-C, exit 130) or SIGTERM (exit 143).

    Raised in the main thread by the handlers of `dmwan_qdrant.interrupts`; long-running library
    functions (ingest) catch it, make what is complete durable, and raise it again with a message
    that says what was stored.
    """

    exit_code = 130

    def __init__(self, message: str = "interrupted", signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
