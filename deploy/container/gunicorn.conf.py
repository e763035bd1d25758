# Gunicorn settings for the container image (deploy/container/Dockerfile copies this file to
# /app/gunicorn.conf.py). Everything a platform sets per deployment comes from the environment.
import os

worker_class = "gworkers.Worker"
# Platforms (Heroku, Cloud Run, Kubernetes manifests) say where to listen with PORT.
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# os.cpu_count() sees the host's cores, not the container's CPU limit: size it explicitly.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Heartbeat files on memory-backed /dev/shm: an overlay or network filesystem under /tmp can
# stall a worker's heartbeat and get it killed as "timed out".
worker_tmp_dir = "/dev/shm"
# The ingress controller / load balancer addresses whose X-Forwarded-* headers are believed
# (Kubernetes: the pod network the ingress controller runs in). Never "*".
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Longer than the load balancer's idle timeout for upstream connections (ingress-nginx: 60s).
keepalive = 75
# Kubernetes' terminationGracePeriodSeconds must exceed this plus the preStop sleep.
graceful_timeout = 20
timeout = 30
# Logs to the container's stdout/stderr, where the runtime collects them.
accesslog = "-"
errorlog = "-"
# Gunicorn 25.1+ control socket: nothing in a container connects to it.
control_socket_disable = True
