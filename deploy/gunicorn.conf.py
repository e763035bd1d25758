# Gunicorn settings shared by the host recipes (nginx, supervisor, circus, systemd).
# Install as /srv/app/gunicorn.conf.py next to the app (main.py defining `app`) and start
#   /srv/app/.venv/bin/gunicorn -c /srv/app/gunicorn.conf.py main:app
# Where the listening socket comes from another program (supervisor, circus, systemd), its
# command line or LISTEN_FDS replaces `bind` below.
import os

worker_class = "gworkers.Worker"
# One event loop per core is enough for an async worker (not Gunicorn's 2*cores+1 for sync).
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))

# nginx (deploy/nginx/gworkers.conf) connects here: /run/gworkers must exist, writable by
# this user and reachable by nginx's. (deploy/systemd: the socket unit creates and binds it.)
bind = "unix:/run/gworkers/gunicorn.sock"

# Proxy headers (X-Forwarded-For/-Proto, Forwarded) are believed only from these TCP peers;
# a unix-socket peer (nginx above) is always trusted. Add your CDN's or load balancer's
# networks here when they connect to Gunicorn directly (see deploy/cdn.md); never "*".
forwarded_allow_ips = "127.0.0.1,::1"

# Keep idle upstream connections open longer than nginx's upstream keepalive_timeout (60s),
# so nginx never reuses a connection the worker has just closed.
keepalive = 75

# Seconds a worker gets to finish in-flight requests after SIGTERM/HUP. Every supervisor's
# stop timeout (systemd TimeoutStopSec, supervisor stopwaitsecs, circus graceful_timeout,
# Kubernetes terminationGracePeriodSeconds) must be longer than this.
graceful_timeout = 30
timeout = 30

# Gunicorn 25.1+ control socket (gunicornc): its default path ($HOME/.gunicorn/gunicorn.ctl)
# would be shared by every master of this user (two under the supervisor recipe). Give each
# master its own `control_socket` path instead if you use gunicornc. Older Gunicorn ignores it.
control_socket_disable = True

accesslog = "-"          # access log to stdout, where journald/supervisor/circus collect it
errorlog = "-"
