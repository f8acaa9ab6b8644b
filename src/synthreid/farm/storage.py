"""Central storage through fsspec: a local folder by default, any fsspec URL at scale
(s3://, gs://, memory:// in tests). Keys are built from ids, the attempt and its random token
only, never from user strings."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import fsspec

from synthreid.errors import JobError


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def attempt_prefix(run_id: int, character_index: int, attempt: int, token: str) -> str:
    """The storage folder of one claim: unique by its token (hex, never a user string)."""
    if not token.isalnum():
        raise JobError(f"claim token {token!r} is not alphanumeric")
    return (f"runs/{run_id:05d}/characters/{character_index:06d}/"
            f"attempt-{attempt:02d}-{token[:16]}")


class Storage:
    def __init__(self, url: str, create: bool = True) -> None:
        """`create=False` (readers such as export): a storage that does not exist is an error,
        not a new empty folder."""
        if "://" not in url:
            url = str(Path(url).expanduser().resolve())
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as error:
            raise JobError(f"storage URL {url!r}: {error}") from None
        self.url = url
        if create:
            try:
                self.fs.makedirs(self.root, exist_ok=True)
            except (OSError, ValueError) as error:  # a file in the way, no permission, ...
                raise JobError(f"storage {url}: cannot be made a folder "
                               f"({type(error).__name__}: {error})".splitlines()[0]) from None
            if not self.fs.isdir(self.root):
                raise JobError(f"storage {url}: not a folder or bucket (check --storage)")
        elif not self.fs.isdir(self.root):
            raise JobError(f"storage {url}: no such folder or bucket (check --storage)")

    def check_writable(self) -> None:
        """Write, read back and remove a probe object: a storage that cannot take the renders
        is one line before any worker starts, not workers dying one after another."""
        probe = f".synthreid-probe-{uuid.uuid4().hex[:12]}"
        try:
            self.put_verified(b"probe", probe)
            self.fs.rm(self.path(probe))
        except (OSError, ValueError, JobError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise JobError(f"storage {self.url}: cannot be written ({reason})") from None

    def path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def put_verified(self, data: bytes, key: str) -> tuple[str, int]:
        """Write `data` under `key` atomically (a temporary name, then a move) and read it back:
        the stored size and checksum must match. Returns (sha256, size)."""
        final = self.path(key)
        temporary = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        digest = sha256_of(data)
        try:
            self.fs.pipe_file(temporary, data)
            self.fs.mv(temporary, final)
        except Exception:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)
            raise
        stored = self.fs.cat_file(final)
        if len(stored) != len(data) or sha256_of(stored) != digest:
            raise JobError(f"storage {self.url}: {key} did not read back as written")
        return digest, len(data)

    def read(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise JobError(f"storage {self.url}: {key} is missing") from None

    def read_verified(self, key: str, sha256: str) -> bytes:
        data = self.read(key)
        if sha256_of(data) != sha256:
            raise JobError(f"storage {self.url}: {key} does not match its checksum")
        return data

    def list(self, prefix: str = "") -> list[str]:
        base = self.path(prefix).rstrip("/")
        if not self.fs.exists(base):
            return []
        root = self.root.rstrip("/") + "/"
        return sorted(p.split(root, 1)[-1] if root in p else p
                      for p in self.fs.find(base))

    def remove_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
