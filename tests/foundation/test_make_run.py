"""`make run` as a new user starts it (SQLite, the embedded broker): Ctrl-C or SIGTERM stops web and worker at once.

The studio runs under make, honcho (Procfile) and the two processes; every one of them must be gone within 10 s of
one signal, and the web port free again. Ctrl-C in a terminal signals the whole foreground process group; a service
manager sends SIGTERM to the group or to the main process only.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN_S = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """True when a server could listen on the port again (closed connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.mark.worker
@pytest.mark.parametrize(
    "sig, to_group",
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "sigterm-group", "sigterm-make"],
)
def test_make_run_stops_web_and_worker_once(tmp_path, sig, to_group):
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "STATIC_ROOT",
                        "MEDIA_ROOT", "LIMRANK_ARTIFACTS_DIR", "LIMRANK_DEMO_PASSWORD"}}
    env.update(LIMRANK_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "run.log", "w+b")
    # -o: the venv is already installed (the test runs from it); make must not reinstall it here.
    make = subprocess.Popen(
        ["make", "run", f"PORT={port}", "-o", ".venv/.installed"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while _healthz(port) != 200:  # 200 only once the database, the broker and a worker are all up
            assert make.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.5)
        procs = [psutil.Process(make.pid), *psutil.Process(make.pid).children(recursive=True)]
        cmdlines = [" ".join(p.cmdline()) for p in procs]
        assert any("honcho" in c for c in cmdlines) and any("runserver" in c for c in cmdlines), cmdlines
        assert any("celery" in c and "worker" in c for c in cmdlines), cmdlines

        if to_group:
            os.killpg(make.pid, sig)
        else:
            os.kill(make.pid, sig)
        started = time.monotonic()
        _, alive = psutil.wait_procs(procs, timeout=STOP_WITHIN_S)
        took = time.monotonic() - started
        output = (tmp_path / "run.log").read_text(errors="replace")
        assert not alive, f"still running {STOP_WITHIN_S} s after {sig.name}: {alive}\n{output}"
        assert took < STOP_WITHIN_S
        assert _port_free(port), f"port {port} still bound after {sig.name}"
        assert output.count("Warm shutdown") <= 1, output
        assert "demo-admin / demo-reviewer password (generated): " in output  # as a new user sees it
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=10)
        log.close()
