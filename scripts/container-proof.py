"""Build and run a real image from ``dockyard build``'s context with podman, on a base made
here from Debian's packages (no image registry is reachable), and check what the image
promises: correct predictions with the printed token, a 401 without it, user 10001, a
read-only root filesystem with only the home writable, a passing HEALTHCHECK, and a
SIGTERM that ends in a graceful shutdown with exit status 0.

Not part of the test suite: a fresh machine spends minutes on debootstrap and on the
image's pip install, beyond the suite's time budget. Run it as root:

    .venv/bin/python scripts/container-proof.py [--keep]

It installs podman, runc and debootstrap with apt-get when missing. Where it runs nested in
another container (as on the project's VMs) it uses runc rather than crun (crun refuses
hybrid cgroups), lowers the container's rlimits to ones the host allows, and copies the
host's CA bundle into the base so pip in the build trusts the same TLS egress as the host.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE = "localhost/dockyard-debian-python:bookworm"
PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def run(*command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def podman(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    return run("podman", *runtime, *args, **kwargs)


def ensure_tools() -> None:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if not shutil.which(tool)]
    if missing:
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing)


def ensure_base(work: Path) -> None:
    if subprocess.run(["podman", "image", "exists", BASE], check=False).returncode == 0:
        return
    root = work / "rootfs"
    run("debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(root),
        "http://deb.debian.org/debian")  # fmt: skip
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / cache).glob("*"):
            if item.is_file():
                item.unlink()
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout, check=True)
    tar.wait()


def registry(work: Path) -> tuple[Path, list[int], list[dict[str, float]]]:
    """A registry with a random forest deployed as ``forest``; its answers for 20 rows."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from dockyard.deploy.service import Deployments, single_route
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    data = load_breast_cancer(as_frame=True)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(data.data, data.target)
    home = work / "registry"
    with Registry.open(Settings(home=home, user="proof")) as opened:
        opened.register(model, "forest", sample=data.data, y=data.target)
        Deployments(opened).deploy("forest", single_route("forest@1.0.0"), actor="proof")
    rows = data.data.iloc[:20]
    return home, model.predict(rows).tolist(), rows.to_dict(orient="records")


def post(url: str, body: object, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="Keep the work folder and image.")
    args = parser.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="dockyard-container-"))
    ensure_base(work)
    home, expected, rows = registry(work)
    context = work / "context"
    built = run(sys.executable, "-m", "dockyard", "--home", str(home), "build", "forest",
                "--out", str(context), "--base", BASE, "--json", capture_output=True)  # fmt: skip
    token = json.loads(built.stdout)["token"]
    tag = json.loads(built.stdout)["tag"]
    started = time.monotonic()
    podman("build", "--format", "docker", "--network", "host", *LIMITS, "-t", tag, str(context))
    print(f"built {tag} in {time.monotonic() - started:.0f} s", flush=True)
    name = f"dockyard-proof-{int(time.time())}"
    podman("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", *LIMITS,
           "-p", "127.0.0.1:18765:8000", tag)  # fmt: skip
    try:
        url = "http://127.0.0.1:18765"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the container never became ready")
            time.sleep(0.5)
        status, answer = post(f"{url}/v1/endpoints/forest/predict", {"instances": rows}, token)
        assert status == 200, (status, answer)
        assert answer["predictions"] == expected, answer
        assert post(f"{url}/v1/endpoints/forest/predict", {"instances": rows}, None)[0] == 401
        who = podman("exec", name, "id", "-u", capture_output=True).stdout.strip()
        assert who == "10001", who
        read_only = subprocess.run(["podman", "exec", name, "touch", "/opt/dockyard/x"],
                                   capture_output=True, text=True, check=False)  # fmt: skip
        assert read_only.returncode != 0, "the root filesystem is writable"
        assert "Read-only" in read_only.stderr, read_only.stderr
        podman("exec", name, "touch", "/var/lib/dockyard/writable")
        podman("healthcheck", "run", name)
        stopped = time.monotonic()
        podman("stop", "-t", "30", name)
        seconds = time.monotonic() - stopped
        code = podman("inspect", name, "--format", "{{.State.ExitCode}}", capture_output=True)
        assert code.stdout.strip() == "0", code.stdout
        logs = podman("logs", name, capture_output=True)
        assert "Application shutdown complete" in logs.stdout + logs.stderr
        print(f"proof passed: predictions equal, 401 without the token, uid 10001, read-only "
              f"root, healthcheck passing, SIGTERM to exit 0 in {seconds:.1f} s")  # fmt: skip
    finally:
        subprocess.run(["podman", "rm", "-f", name], check=False, capture_output=True)
        if not args.keep:
            subprocess.run(["podman", "rmi", "-f", tag], check=False, capture_output=True)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
