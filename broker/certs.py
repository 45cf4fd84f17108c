"""Development TLS certificates for the broker (a private CA and a server certificate) via openssl.

Production sites use certificates from their own CA; these are for test benches and demos.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DAYS = 825  # the longest validity clients still accept for a server certificate


class CertError(RuntimeError):
    """openssl is missing or failed."""


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise CertError("openssl is not installed (apt-get install openssl)")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def dev_certs(out_dir: Path, hostname: str = "localhost") -> dict[str, Path]:
    """Write ca.crt/ca.key and server.crt/server.key (SAN: hostname, 127.0.0.1) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        str(DAYS),
        "-subj",
        "/CN=WildWatch development CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=out_dir,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={hostname}",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=out_dir,
    )
    (out_dir / "san.ext").write_text(
        f"subjectAltName=DNS:{hostname},DNS:localhost,IP:127.0.0.1\n", encoding="ascii"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        str(DAYS),
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=out_dir,
    )
    (out_dir / "server.key").chmod(0o600)
    (out_dir / "ca.key").chmod(0o600)
    return {n: out_dir / f"{n}" for n in ("ca.crt", "server.crt", "server.key")}
