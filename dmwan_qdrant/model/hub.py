"""Model bundles on the Hugging Face Hub: ``--model hf-hub:ORG/NAME[@REVISION]``.

A hub name is fetched once with ``huggingface_hub.snapshot_download`` (only the bundle's files)
into the hub's usual cache and read from there afterwards, also offline (``HF_HUB_OFFLINE=1``).
``huggingface_hub`` reads its environment variables when it is imported; the ones that matter here
(``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``, ``HF_HOME``, ``HF_ENDPOINT``) are read at call time instead
and passed to it explicitly. Every failure is one line that says why and what to pass instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CheckpointError, UsageError, WeightsUnavailableError
from .bundle import CONFIG_FILE, WEIGHTS_FILE, read_bundle_record

HUB_PREFIX = "hf-hub:"
DEFAULT_ENDPOINT = "https://huggingface.co"
_FILES = [CONFIG_FILE, WEIGHTS_FILE, "README.md"]
_FORM = f"{HUB_PREFIX}ORG/NAME[@REVISION]"
_BAD_REVISION = re.compile(r"[\s\x00-\x1f\x7f]")
_INSTEAD = "pass a local bundle folder to --model"


def is_hub_name(ref: str | os.PathLike) -> bool:
    """Whether ``ref`` names a bundle on the Hugging Face Hub (a str starting with ``hf-hub:``)."""
    return isinstance(ref, str) and ref.startswith(HUB_PREFIX)


def parse_hub_name(ref: str) -> tuple[str, str | None]:
    """Split ``hf-hub:ORG/NAME[@REVISION]`` into the repository id and the revision.

    Args:
        ref: the hub name, with its ``hf-hub:`` prefix.

    Returns:
        ``("ORG/NAME", revision)``; revision is None when the name has no ``@REVISION``.

    Raises:
        UsageError: a malformed name (one line naming the expected form).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    def bad(why: str) -> UsageError:
        return UsageError(f"bad hub model name {ref!r}: {why}; expected {_FORM}")

    if not is_hub_name(ref):
        raise bad(f"it does not start with {HUB_PREFIX!r}")
    repo_id, at, revision = ref[len(HUB_PREFIX) :].partition("@")
    if repo_id.count("/") != 1:
        raise bad("the repository must be ORG/NAME, with exactly one '/'")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise bad("ORG and NAME take letters, digits, '-', '_' and '.' (no '--' or '..'), 96 at most") from None
    if at and (not revision or _BAD_REVISION.search(revision)):
        raise bad("the revision after '@' must be a non-empty branch, tag or commit")
    return repo_id, (revision if at else None)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache in use, read from the environment now.

    ``HF_HUB_CACHE`` (or the legacy ``HUGGINGFACE_HUB_CACHE``), else ``HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``.
    """
    env = os.environ
    path = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if not path:
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
        path = os.path.join(os.path.expandvars(os.path.expanduser(home)), "hub")
    return Path(os.path.expandvars(os.path.expanduser(path)))


def _offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"} or constants.is_offline_mode()


def _first_line(exc: BaseException, named: bool = True) -> str:
    line = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {line}" if named and line else line or type(exc).__name__


def fetch_bundle(ref: str, cache_dir: str | Path | None = None) -> Path:
    """Download a hub bundle's ``config.json`` and ``model.safetensors`` once; the cached folder.

    Online, the revision is resolved on the Hub and only missing files are downloaded; a cached
    snapshot is used when the Hub cannot be reached, and only the cache when ``HF_HUB_OFFLINE`` is
    set. Here both files must exist, the config be a DMWAN bundle's and the weights' header match
    it; `load_model` verifies the weights' bytes against the fingerprint.

    Args:
        ref: ``hf-hub:ORG/NAME[@REVISION]``.
        cache_dir: the hub cache to use; `hub_cache_dir()` when None.

    Returns:
        The snapshot folder, a model bundle that `load_model` reads.

    Raises:
        UsageError: a malformed name.
        WeightsUnavailableError: the bundle is neither cached nor fetchable (says why).
        CheckpointError: the repository holds no (complete) DMWAN bundle.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse_hub_name(ref)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    offline = _offline()
    try:
        got = snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=offline,
                                allow_patterns=_FILES, endpoint=endpoint, etag_timeout=5)
    except LocalEntryNotFoundError as exc:
        cause = exc.__cause__
        if offline or isinstance(cause, OfflineModeIsEnabled):
            raise WeightsUnavailableError(
                f"{ref} is not in the local Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set; "
                f"run once with the internet, or download the bundle folder and pass its path to --model"
            ) from None
        if isinstance(cause, HfHubHTTPError):
            raise WeightsUnavailableError(
                f"{ref} cannot be fetched: the Hugging Face Hub ({endpoint}) answered "
                f"{_first_line(cause, named=False)}, and it is not in the local cache ({cache}); "
                f"try again later, or {_INSTEAD}"
            ) from None
        raise WeightsUnavailableError(
            f"{ref} cannot be fetched: the Hugging Face Hub ({endpoint}) cannot be reached "
            f"({_first_line(cause or exc)}) and it is not in the local cache ({cache}); "
            f"check the connection (or HF_ENDPOINT), or {_INSTEAD}"
        ) from None
    except GatedRepoError:
        raise WeightsUnavailableError(
            f"{ref} is gated on the Hugging Face Hub: accept its conditions on {endpoint}/{repo_id} and log in "
            f"(hf auth login, or set HF_TOKEN), or {_INSTEAD}"
        ) from None
    except RepositoryNotFoundError:
        raise WeightsUnavailableError(
            f"{ref} was not found on the Hugging Face Hub ({endpoint}), or it is private and no valid token was "
            f"given; check the name (expected {_FORM}), or {_INSTEAD}"
        ) from None
    except RevisionNotFoundError:
        raise WeightsUnavailableError(
            f"{ref}: revision {revision!r} was not found in {repo_id} on the Hugging Face Hub; "
            f"check the revision (a branch, tag or commit), or {_INSTEAD}"
        ) from None
    except HfHubHTTPError as exc:
        raise WeightsUnavailableError(
            f"{ref} cannot be fetched from the Hugging Face Hub ({endpoint}): "
            f"{_first_line(exc, named=False)}; {_INSTEAD}"
        ) from None
    except OSError as exc:  # the cache folder: not writable, disk full
        raise WeightsUnavailableError(
            f"{ref} cannot be stored in the Hugging Face cache ({cache}): {_first_line(exc)}; "
            f"set HF_HUB_CACHE to a writable folder, or {_INSTEAD}"
        ) from None
    except _http_client_error() as exc:
        raise WeightsUnavailableError(
            f"{ref} cannot be fetched: the Hugging Face Hub ({endpoint}) cannot be reached ({_first_line(exc)}); "
            f"check the connection and proxy settings, or {_INSTEAD}"
        ) from None
    folder = Path(got)
    _check_bundle(ref, folder, offline)
    return folder


def _http_client_error() -> type[Exception]:
    """The base error of huggingface_hub's HTTP client, whose proxy and protocol errors escape it
    as they are: ``httpx2`` under huggingface_hub 2, ``httpx`` under 1 (which FastEmbed pins)."""
    import huggingface_hub

    if int(huggingface_hub.__version__.split(".")[0]) >= 2:
        import httpx2

        return httpx2.HTTPError
    import httpx

    return httpx.HTTPError


def _check_bundle(ref: str, folder: Path, offline: bool) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        record = read_bundle_record(folder)
    except CheckpointError as exc:
        raise CheckpointError(f"{ref} is not a dmwan model bundle ({exc})") from None
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        hint = "; run once with the internet to complete the download" if offline else ""
        raise CheckpointError(f"{ref} is not a dmwan model bundle ({folder} has no {WEIGHTS_FILE}{hint})")
    try:
        with safe_open(str(weights), framework="pt") as f:
            fingerprint = (f.metadata() or {}).get("fingerprint")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{ref}: {weights} is corrupted or truncated ({_first_line(exc)})") from None
    if fingerprint is not None and fingerprint != record.get("fingerprint"):
        raise CheckpointError(f"{ref}: {weights} does not belong to its {CONFIG_FILE} (fingerprints differ)")
