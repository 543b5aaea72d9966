"""Model artifacts: one safetensors file that carries its own manifest.

The file holds the state dict as safetensors and, in the safetensors header's
metadata, a canonical JSON manifest (architecture, encoder, feature lists,
layer inventory, format version). Preprocessing therefore travels with the
weights, and the artifact's SHA-256 is simply the SHA-256 of the file's bytes:
the same weights and manifest always serialise to the same bytes.

Loading never unpickles: the hash is checked first, then the header is read
as JSON and the tensors by safetensors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from workers.ml.encoding import TabularEncoder
from workers.ml.network import TabularNet, layer_inventory

ARTIFACT_FORMAT = "tabularnet-artifact"
ARTIFACT_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
_MANIFEST_KEY = "manifest"
# A header larger than this is not one we wrote; refuse before parsing it.
_MAX_HEADER_BYTES = 16 * 1024 * 1024


class ArtifactError(ValueError):
    """The bytes are not a valid artifact of this format."""


class ArtifactTampered(ArtifactError):
    """The artifact's SHA-256 differs from the one recorded for it."""


@dataclass(frozen=True)
class LoadedArtifact:
    model: TabularNet
    encoder: TabularEncoder
    manifest: dict[str, Any]
    sha256: str


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII only, no NaN: one text per value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def build_manifest(
    model: TabularNet,
    encoder: TabularEncoder,
    *,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if model.config["n_numeric"] != encoder.n_numeric_inputs or (
        model.config["cardinalities"] != encoder.cardinalities
    ):
        raise ArtifactError("the encoder does not match the network's inputs")
    return {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_FORMAT_VERSION,
        "architecture": model.config,
        "encoder": encoder.to_dict(),
        "features": {
            "numeric": list(encoder.numeric),
            "categorical": list(encoder.categorical),
        },
        "layers": layer_inventory(model),
        "metadata": dict(metadata or {}),
    }


def artifact_bytes(
    model: TabularNet,
    encoder: TabularEncoder,
    *,
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """Serialise model + encoder; `metadata` is any JSON-safe dict to carry."""
    manifest = build_manifest(model, encoder, metadata=metadata)
    tensors = {
        name: tensor.detach().to("cpu").contiguous().clone()
        for name, tensor in model.state_dict().items()
    }
    # One metadata key only: safetensors stores metadata in a hash map, so a
    # single key is what keeps the header's byte order fixed.
    return save_safetensors(tensors, metadata={_MANIFEST_KEY: canonical_json(manifest)})


def artifact_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_artifact(
    source: bytes | str | Path, *, expected_sha256: str | None
) -> LoadedArtifact:
    """Verify, then rebuild the model and encoder.

    `source` is the artifact's bytes or a directory written by `save_artifact`.
    Pass the SHA-256 recorded when the artifact was registered; None skips the
    check and should only be used for an artifact that has no record yet.
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        directory = None
    else:
        directory = Path(source)
        data = (directory / WEIGHTS_FILE).read_bytes()
    actual = artifact_sha256(data)
    if expected_sha256 is not None and actual != expected_sha256.strip().lower():
        raise ArtifactTampered(
            f"artifact SHA-256 mismatch: expected {expected_sha256}, got {actual}; "
            "the file was altered or is not the registered artifact, refusing to load"
        )
    manifest = read_manifest(data)
    if directory is not None and (directory / MANIFEST_FILE).exists():
        # The readable copy must say what the hashed file says.
        side = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        if side != manifest:
            raise ArtifactTampered(
                f"{MANIFEST_FILE} differs from the manifest inside {WEIGHTS_FILE}"
            )
    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"artifact weights are unreadable: {exc}") from exc
    try:
        encoder = TabularEncoder.from_dict(manifest["encoder"])
        model = TabularNet(manifest["architecture"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ArtifactError(
            f"artifact does not describe a loadable model: {exc}"
        ) from exc
    model.eval()
    return LoadedArtifact(
        model=model, encoder=encoder, manifest=manifest, sha256=actual
    )


def read_manifest(data: bytes) -> dict[str, Any]:
    """The manifest from a safetensors header, read as plain JSON."""
    if len(data) < 8:
        raise ArtifactError("artifact is too short to be a safetensors file")
    size = int.from_bytes(data[:8], "little")
    if size > _MAX_HEADER_BYTES or 8 + size > len(data):
        raise ArtifactError("artifact header length is out of range")
    try:
        header = json.loads(data[8 : 8 + size])
        manifest = json.loads(header["__metadata__"][_MANIFEST_KEY])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"artifact has no readable manifest: {exc}") from exc
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"not a {ARTIFACT_FORMAT} file")
    if manifest.get("format_version") != ARTIFACT_FORMAT_VERSION:
        raise ArtifactError(
            f"unsupported artifact format version {manifest.get('format_version')!r}"
            f" (this code reads version {ARTIFACT_FORMAT_VERSION})"
        )
    return manifest


def save_artifact(
    directory: str | Path,
    model: TabularNet,
    encoder: TabularEncoder,
    *,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Write model.safetensors (hashed) and a readable manifest.json; return the hash.

    manifest.json is a convenience copy for people; the hash covers
    model.safetensors, which embeds the same manifest.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = artifact_bytes(model, encoder, metadata=metadata)
    (directory / WEIGHTS_FILE).write_bytes(data)
    (directory / MANIFEST_FILE).write_text(
        json.dumps(read_manifest(data), indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return artifact_sha256(data)
