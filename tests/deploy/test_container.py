"""deploy/container: the Dockerfile's CMD run as-is (no Docker daemon), and the Kubernetes YAML
cross-checked against the Gunicorn settings it has to agree with."""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import wait_until
from tests.deploy.support import DEPLOY, app_dir, free_port, program_env, request

CONTAINER = DEPLOY / "container"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in (CONTAINER / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, args = (pending + line).strip().partition(" ")
        out.append((instruction.upper(), args.strip()))
        pending = ""
    return out


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def cmd() -> list[str]:
    cmds = [args for instruction, args in dockerfile() if instruction == "CMD"]
    assert len(cmds) == 1
    argv = json.loads(cmds[0])  # exec form: a JSON array, no shell: Gunicorn is PID 1
    assert isinstance(argv, list) and argv[0] == "gunicorn"
    return argv


def manifests() -> dict[str, dict]:
    docs = list(yaml.safe_load_all((CONTAINER / "kubernetes.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs}


def test_dockerfile_shape():
    steps = dockerfile()
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert [i for i, _ in steps].index("USER") < [i for i, _ in steps].index("CMD")
    argv = cmd()
    conf_path = argv[argv.index("-c") + 1]
    assert conf_path == "/app/gunicorn.conf.py"
    assert ("WORKDIR", "/app") in steps
    conf = runpy.run_path(str(CONTAINER / "gunicorn.conf.py"))
    assert conf["worker_tmp_dir"] == "/dev/shm"
    assert conf["accesslog"] == "-"


def test_kubernetes_numbers_agree():
    k8s = manifests()
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    conf = runpy.run_path(str(CONTAINER / "gunicorn.conf.py"))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # the kubelet's SIGKILL must come after the preStop delay plus Gunicorn's graceful stop
    assert pod["terminationGracePeriodSeconds"] > conf["graceful_timeout"] + float(pre_stop[1])
    assert pod["securityContext"]["runAsNonRoot"] is True
    uid = [a for i, a in dockerfile() if i == "USER"][-1]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    env = {e["name"]: e["value"] for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(env["PORT"]) == ports["http"]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert "*" not in env["FORWARDED_ALLOW_IPS"]
    service = k8s["Service"]["spec"]
    assert service["selector"] == k8s["Deployment"]["spec"]["selector"]["matchLabels"]
    assert service["ports"][0]["targetPort"] == "http"


class Container:
    """The CMD, run in a stand-in for /app with the image's and the manifest's environment."""

    def __init__(self, tmp: Path) -> None:
        app = app_dir(tmp)
        shutil.copy(CONTAINER / "gunicorn.conf.py", app / "gunicorn.conf.py")
        argv = [a.replace("/app/", f"{app}/") for a in cmd()]
        container = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        self.probe = container["readinessProbe"]["httpGet"]["path"]
        self.port = free_port()
        env = program_env(**docker_env())
        env.update({e["name"]: e["value"] for e in container["env"]})
        env.update(PORT=str(self.port), WEB_CONCURRENCY="3", FORWARDED_ALLOW_IPS="127.0.0.1")
        self.out, self.err = tmp / "stdout.log", tmp / "stderr.log"
        with open(self.out, "wb") as stdout, open(self.err, "wb") as stderr:
            self.proc = subprocess.Popen(argv, cwd=app, env=env, stdout=stdout, stderr=stderr,
                                         start_new_session=True)

        def booted():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.err.read_text()}")
            return len(re.findall(r"Booting worker with pid", self.err.read_text())) >= 3

        wait_until(booted, message="3 workers (WEB_CONCURRENCY)")

    def get(self, path: str, **kwargs):
        return request(("127.0.0.1", self.port), path, host=f"127.0.0.1:{self.port}", **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def container(tmp_path):
    c = Container(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def test_cmd_serves_with_port_and_concurrency(container):
    err = container.err
    assert f"Listening at: http://0.0.0.0:{container.port}" in err.read_text()
    assert container.get(container.probe).status == 200  # the readiness probe's path
    scope = container.get("/via-ingress", headers={"X-Forwarded-For": "198.51.100.4"}).json()
    assert scope["client"][0] == "198.51.100.4"  # FORWARDED_ALLOW_IPS is honoured
    container.proc.terminate()  # what `docker stop` / the kubelet send PID 1
    assert container.proc.wait(30) == 0
    assert "Shutting down: Master" in err.read_text()


def test_cmd_logs_access_to_stdout(container):
    assert container.get("/logged").status == 200
    wait_until(lambda: "GET /logged" in container.out.read_text(), message="access log line", timeout=10)
    assert "GET /logged" not in container.err.read_text()  # stdout only, errors on stderr


def test_sigterm_right_after_boot_stops_every_worker(container):
    """`docker stop` / the kubelet may TERM a container that has only just started."""
    container.proc.terminate()
    assert container.proc.wait(60) == 0
    log = container.err.read_text()
    booted = set(re.findall(r"Booting worker with pid: (\d+)", log))
    exited = set(re.findall(r"Worker exiting \(pid: (\d+)\)", log))
    assert booted and booted <= exited, f"workers that never drained: {booted - exited}\n{log}"
