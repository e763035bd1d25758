"""nginx (the shipped deploy/nginx/gworkers.conf) in front of Gunicorn + gworkers, for a test.

Only paths and ports are changed: the socket, certificate, static and ACME paths, and the two
listen ports (picked free; nginx is started again on new ones if another process took one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.support import (
    DEPLOY,
    PortTaken,
    Program,
    app_dir,
    client_tls,
    connects,
    free_port,
    render,
    retry_bind,
    start_nginx_program,
)


@dataclass
class NginxStack:
    tmp: Path
    sock_dir: Path
    ca_file: str
    app: Path = field(init=False)
    gunicorn_conf: Path = field(init=False)
    socket_path: str = field(init=False)
    http_port: int = 0
    https_port: int = 0
    nginx: Program | None = None
    gunicorn: object = None  # the GunicornServer behind nginx, set by the test
    conf_edits: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = app_dir(self.tmp)
        self.socket_path = str(self.sock_dir / "gunicorn.sock")
        self.gunicorn_conf = self.app / "gunicorn.conf.py"
        render(DEPLOY / "gunicorn.conf.py", self.gunicorn_conf,
               {"unix:/run/gworkers/gunicorn.sock": f"unix:{self.socket_path}",
                **self.conf_edits})

    def gunicorn_args(self) -> list[str]:
        return ["-c", str(self.gunicorn_conf), "--chdir", str(self.app)]

    @property
    def https(self) -> tuple[str, int]:
        return ("127.0.0.1", self.https_port)

    @property
    def http(self) -> tuple[str, int]:
        return ("127.0.0.1", self.http_port)

    def tls(self):
        return client_tls(self.ca_file)

    def start_nginx(self, cert: str, key: str) -> None:
        prefix = self.tmp / "nginx"
        prefix.mkdir(exist_ok=True)
        acme = self.tmp / "acme"
        acme.mkdir(exist_ok=True)

        def start():
            self.http_port, self.https_port = free_port(), free_port()
            site = prefix / "gworkers.conf"
            render(DEPLOY / "nginx" / "gworkers.conf", site, {
                "unix:/run/gworkers/gunicorn.sock": f"unix:{self.socket_path}",
                "listen 80": f"listen 127.0.0.1:{self.http_port}",
                "listen 443": f"listen 127.0.0.1:{self.https_port}",
                "/etc/letsencrypt/live/example.com/fullchain.pem": cert,
                "/etc/letsencrypt/live/example.com/privkey.pem": key,
                "/srv/app/static/": f"{self.app}/static/",
                "/var/www/letsencrypt": str(acme),
            })
            proc = start_nginx_program(prefix, f"include {site};", connections=128)

            def up():
                if not proc.alive():
                    errors = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
                    if "Address already in use" in errors + proc.log():
                        proc.stop()
                        raise PortTaken(errors)
                return connects(self.http) and connects(self.https)

            try:
                proc.wait_for(up, "nginx listening")
            except PortTaken:
                raise
            except AssertionError:
                proc.stop()
                raise AssertionError(f"{proc.log()}\n{(prefix / 'error.log').read_text()}") from None
            return proc

        self.nginx = retry_bind(start)

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()


def issue_cert(tls_files: dict, directory: Path, *names: str) -> tuple[str, str]:
    """A certificate for ``names`` from the suite's test CA, as fullchain and key files."""
    cert = tls_files["_ca"].issue_cert(*names)
    chain, key = directory / "fullchain.pem", directory / "privkey.pem"
    chain.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    return str(chain), str(key)
