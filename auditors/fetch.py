"""Download the public POPE/RePOPE annotation files and verify them against KNOWN_DIGESTS.

The RePOPE repository (github.com/YanNeu/RePOPE) publishes both the original POPE files and the
relabelled RePOPE files under `annotations/`. Each file is downloaded to a hidden temporary name
beside its destination, hashed while it streams, and moved into place only when its SHA-256
matches; a file that does not match is deleted and reported, so a bad download never sits where
the loaders would read it.

Example::

    >>> fetch_annotations("data/repope")  # doctest: +SKIP
    [FetchedFile(name='coco_pope_adversarial.json', status='downloaded', ...), ...]
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from auditors.annotations import KNOWN_DIGESTS, AnnotationError, ChecksumError, sha256_file

REPOPE_REPOSITORY = "https://github.com/YanNeu/RePOPE"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com/YanNeu/RePOPE/main/annotations/"


class FetchError(AnnotationError):
    """A download that failed (network, HTTP status); the message names the URL."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchedFile:
    name: str
    path: Path
    url: str
    sha256: str
    status: Literal["downloaded", "present"]  # present: already there with the right digest


def fetch_annotations(
    out: Path | str,
    base_url: str = DEFAULT_BASE_URL,
    digests: Mapping[str, str] = KNOWN_DIGESTS,
    timeout: float = 60.0,
    on_file: Callable[[FetchedFile], None] | None = None,
) -> list[FetchedFile]:
    """Download every file in `digests` from `base_url` into `out`, verifying each SHA-256.

    Files already present with the right digest are kept (not downloaded again). Raises
    ChecksumError for a file whose content does not match (nothing is written for it) and
    FetchError when a download fails. `on_file` is called after each file (progress).
    """
    import httpx

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not base_url.endswith("/"):
        base_url += "/"
    results: list[FetchedFile] = []
    with httpx.Client(follow_redirects=True, timeout=timeout) as client:
        for name, expected in sorted(digests.items()):
            dest = out / name
            url = base_url + name
            if dest.exists() and sha256_file(dest) == expected:
                result = FetchedFile(name=name, path=dest, url=url, sha256=expected, status="present")
            else:
                tmp = dest.with_name(f".{name}.part")
                sha = _download(client, url, tmp)
                if sha != expected:
                    tmp.unlink(missing_ok=True)
                    raise ChecksumError(
                        f"{url}: downloaded SHA-256 {sha} does not match the expected {expected}; "
                        "the file was not saved. The server may hold a different version: check the URL "
                        "(--base-url) or report it"
                    )
                os.replace(tmp, dest)  # atomic: the loaders see the old file or the verified new one
                result = FetchedFile(name=name, path=dest, url=url, sha256=sha, status="downloaded")
            results.append(result)
            if on_file is not None:
                on_file(result)
    return results


def _download(client, url: str, tmp: Path) -> str:
    """Stream `url` into `tmp`, returning the SHA-256 of the bytes received."""
    import httpx

    digest = hashlib.sha256()
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise FetchError(
                    f"{url}: HTTP {response.status_code}; check the URL (--base-url) and network access"
                )
            with open(tmp, "wb") as fh:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise FetchError(f"{url}: download failed ({exc}); check network access or pass --base-url") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest.hexdigest()
