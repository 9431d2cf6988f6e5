"""The README's run command on the embedded default (SQLite + SQLAlchemy broker on a SQLite file, one worker):
`make run` comes up, /healthz is green, the demo reviewer logs in and sees demo examples, and the worker
executes a job enqueued through a service."""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.worker, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(opener, url, data=None, timeout=10):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_healthy(opener, base, proc, timeout=180):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make run exited early with {proc.returncode}")
        try:
            last = fetch(opener, base + "/healthz", timeout=5)
            if last[0] == 200:
                return json.loads(last[1])
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError(f"/healthz never turned green: {last}")


def test_make_run_serves_demo_to_a_reviewer_with_a_live_worker(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(LIMRANK_VAR_DIR=str(tmp_path / "var"), LIMRANK_DEMO_PASSWORD="demo-pass-123", PORT=str(port),
               PY=sys.executable, VENV=str(Path(sys.executable).parents[1]), LIMRANK_WORKER_HEARTBEAT_SECONDS="1")
    proc = subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    try:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{port}"
        health = wait_healthy(opener, base, proc)
        assert health["broker"]["transport"] == "sqla+sqlite"
        assert health["database"]["vendor"] == "sqlite"

        status, page = fetch(opener, base + "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, page = fetch(opener, base + "/accounts/login/",
                             {"username": "demo-reviewer", "password": "demo-pass-123", "csrfmiddlewaretoken": token})
        assert status == 200 and "demo-reviewer" in page
        status, page = fetch(opener, base + "/examples/?status=pending_review")
        assert status == 200
        rows = re.findall(r'href="/examples/\d+/"', page)
        assert len(rows) >= 20, "the demo reviewer should see a page of demo examples"

        # The worker runs a job that a service enqueues after commit.
        manage = [sys.executable, "manage.py", "shell", "-c"]
        out = subprocess.run(manage + [
            "from curation.services.generation import generation_run_create;"
            "r = generation_run_create(created_by=None, n_seeds=0, n_personas=0);print(r.pk)"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline and state != "succeeded":
            state = subprocess.run(manage + [f"from curation.models import GenerationRun;print(GenerationRun.objects.get(pk={out}).status)"],
                                   cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            time.sleep(1)
        assert state == "succeeded"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.stdout.read() if proc.stdout else ""
        print(output[-3000:])
