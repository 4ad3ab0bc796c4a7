"""Set up a fresh Debian 12 machine, then run the gate or the test suite.

    python3 -m harness.bootstrap run [harness run options]   # README command 1
    python3 -m harness.bootstrap test [tox options]          # README command 2

Installs the Debian packages (the kernel image and headers matching the installed
linux-source-6.12, derived from its version), creates .venv with the project installed,
then hands over to `harness run` or `tox`.  Standard library only: it runs before any
dependency exists.  Safe to re-run: installed packages and an existing venv are kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from harness.errors import HarnessError
from harness.host import proc

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
LOGS = ROOT / "harness-runs" / "bootstrap"
SOURCE = "linux-source-6.12"
PACKAGES = (
    "qemu-system-x86", "busybox-static", "clang-19", "llvm-19", "lld-19", "pahole",
    "gcc", "make", "git", "cpio", "libelf-dev", "zlib1g-dev", "flex", "bison", "bc",
    "libssl-dev", "xz-utils", "ccache", "debootstrap", "squashfs-tools", SOURCE,
)
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
TIER_TIMEOUT = 3600.0


def kernel_packages(source_version: str, flavour: str = "cloud-amd64") -> list[str]:
    """Image and headers matching a linux-source version.

    '6.12.117-1~deb12u1' → linux-image-6.12.117+deb12-cloud-amd64 (+ headers): Debian
    names the kernel ABI '<upstream>+deb<release>'.
    """
    m = re.match(r"^(\d+\.\d+\.\d+)-[^~]*~(deb\d+)", source_version)
    if m is None:
        raise HarnessError(f"cannot derive a kernel ABI from {SOURCE} {source_version}")
    release = f"{m[1]}+{m[2]}-{flavour}"
    return [f"linux-image-{release}", f"linux-headers-{release}"]


def image_choice(image: str, candidate: Callable[[str], bool]) -> str:
    """The signed image package, or its `-unsigned` twin (the same kernel, not signed for
    Secure Boot) while Debian's archive has the new version unsigned only: seen on
    bookworm-security between a linux-source upload and its signed build."""
    unsigned = f"{image}-unsigned"
    if candidate(image) or not candidate(unsigned):
        return image
    return unsigned


def candidate(package: str) -> str | None:
    """The version apt would install of `package` (`apt-cache policy`), or None."""
    try:
        out = proc.capture(["apt-cache", "policy", package])
    except proc.ProcError:
        return None
    m = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
    return m[1] if m is not None and m[1] != "(none)" else None


def has_candidate(package: str) -> bool:
    """apt has a version of `package` to install."""
    return candidate(package) is not None


def _log(name: str) -> Path:
    LOGS.mkdir(parents=True, exist_ok=True)
    return LOGS / f"{name}.log"


def _missing(packages: Sequence[str]) -> list[str]:
    missing = []
    for pkg in packages:
        try:
            status = proc.capture(["dpkg-query", "-W", "-f=${Status}", pkg])
        except proc.ProcError:
            status = ""
        if "install ok installed" not in status:
            missing.append(pkg)
    return missing


def _apt_update(updated: list[bool]) -> None:
    proc.run(["apt-get", "update", "-q"], log=_log("apt-update"), timeout=600, env=APT_ENV)
    updated.append(True)


def _apt_install(packages: Sequence[str], updated: list[bool]) -> None:
    missing = _missing(packages)
    if not missing:
        return
    if not updated:
        _apt_update(updated)
    print(f"bootstrap: installing {' '.join(missing)}", file=sys.stderr, flush=True)
    proc.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
             log=_log("apt-install"), timeout=1800, env=APT_ENV)


def ensure_packages(packages: Sequence[str]) -> list[str]:
    """Install, through apt, those of `packages` that dpkg does not list; the ones it did.

    For scripts that need more than PACKAGES (the benchmark's upstream build needs rsync).
    """
    missing = _missing(packages)
    if missing and os.geteuid() != 0:
        raise HarnessError(f"missing Debian packages {' '.join(missing)}: run as root, or "
                           f"apt-get install {' '.join(missing)}")
    _apt_install(missing, [])
    return missing


def install_system() -> None:
    if os.geteuid() != 0:
        raise HarnessError("bootstrap installs Debian packages: run it as root")
    updated: list[bool] = []
    _apt_install(PACKAGES, updated)
    version = proc.capture(["dpkg-query", "-W", "-f=${Version}", SOURCE]).strip()
    image, headers = kernel_packages(version)
    if _missing([image]) and _missing([f"{image}-unsigned"]):
        if not updated:
            _apt_update(updated)
        _apt_install([image_choice(image, has_candidate)], updated)
    _apt_install([headers], updated)
    try:
        import ensurepip  # noqa: F401, PLC0415  (Debian splits it into python3-venv)
    except ImportError:
        _apt_install(["python3-venv"], updated)


def install_venv() -> None:
    python = VENV / "bin/python"
    if not python.exists():
        proc.run([sys.executable, "-m", "venv", str(VENV)], log=_log("venv"), timeout=300)
    proc.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]", "tox"],
             log=_log("pip"), timeout=1200)


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "setup"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        install_system()
        install_venv()
    except HarnessError as exc:
        print(f"bootstrap: error: {exc.line()}", file=sys.stderr)
        return 4
    os.environ.setdefault("HARNESS_ACCEL", "tcg")
    if argv[0] == "run":
        os.execv(VENV / "bin/harness", ["harness", "run", *argv[1:]])
    if argv[0] == "test":
        os.chdir(ROOT)
        if argv[1:]:
            os.execv(VENV / "bin/tox", ["tox", *argv[1:]])
        return run_tiers()
    return 0


TIERS = ("lint", "unit", "integration", "slow")
# The engine the container tests need, when none runs: no container ever has a network,
# so it makes no bridge and writes no iptables rules.
DOCKERD = ("dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false")
DOCKER_SOCKET = Path("/var/run/docker.sock")
ENGINE_WAIT = 60.0
DOCKERD_GRACE = 20.0  # seconds dockerd gets to stop its containerd before SIGKILL


def engine_socket(env: Mapping[str, str] = os.environ) -> Path | None:
    """The unix socket the SDK will ask (DOCKER_HOST's, else Docker's own); None when
    DOCKER_HOST names an engine elsewhere (not one to start here)."""
    host = env.get("DOCKER_HOST", "")
    if not host:
        return DOCKER_SOCKET
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else None


def engine_answers(sock: Path = DOCKER_SOCKET) -> bool:
    """A Docker engine answers its ping on `sock` (raw HTTP: the SDK is not there yet)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b"200 OK" in s.recv(4096)
        except OSError:
            return False


@contextlib.contextmanager
def docker_engine() -> Iterator[None]:
    """For the block: the running engine, or Debian's docker.io started (installed first
    when missing) and stopped afterwards."""
    sock = engine_socket()
    if sock is None or engine_answers(sock):
        yield
        return
    _apt_install(["docker.io"], [])
    if engine_answers(sock):  # the package's own service started it (an init that runs one)
        yield
        return
    log = _log("dockerd")
    with proc.daemon([*DOCKERD, f"--host=unix://{sock}"], log=log, grace=DOCKERD_GRACE) as p:
        deadline = time.monotonic() + ENGINE_WAIT
        while not engine_answers(sock):
            if p.poll() is not None:
                raise HarnessError(f"dockerd exited with status {p.returncode} before it "
                                   f"answered (log: {log})")
            if time.monotonic() > deadline:
                raise HarnessError(f"dockerd did not answer within {ENGINE_WAIT:.0f} s "
                                   f"(log: {log})")
            time.sleep(0.5)
        print("bootstrap: started the Docker engine for the tests", file=sys.stderr)
        yield
    print("bootstrap: stopped the Docker engine it started", file=sys.stderr)


def run_tiers() -> int:
    """Each tox tier in order, all of them, with its wall time; non-zero if any failed.
    The container tests' Docker engine runs meanwhile (started here if none does)."""
    with docker_engine():
        return _tiers()


def _tiers() -> int:
    timings: list[str] = []
    failed = []
    for tier in TIERS:
        start = time.monotonic()
        code = proc.foreground([str(VENV / "bin/tox"), "-e", tier], timeout=TIER_TIMEOUT,
                               cwd=ROOT)
        seconds = time.monotonic() - start
        timings.append(f"{tier} {seconds:.0f} s ({'ok' if code == 0 else f'exit {code}'})")
        print(f"bootstrap: tier {tier}: {seconds:.1f} s, exit {code}", file=sys.stderr,
              flush=True)
        if code != 0:
            failed.append(tier)
    print(f"bootstrap: tier wall times: {', '.join(timings)}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
