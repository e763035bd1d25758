# HTTPS served by Gunicorn itself, with a password-protected private key:
#   GUNICORN_KEY_PASSWORD=... gunicorn -c gunicorn_tls.conf.py -k gworkers.Worker \
#       --certfile cert.pem --keyfile key.pem main:app
# Gunicorn has no password setting, and its default context would make OpenSSL ask for the
# password on a terminal; this `ssl_context` hook builds the same context with the password
# from the environment instead (under systemd: EnvironmentFile= readable by root only).
#
# Client certificates (mutual TLS), honoured by the hook below:
#   --ca-certs clients-ca.pem --cert-reqs 2      (2 = ssl.CERT_REQUIRED: no certificate, no
#   handshake; 1 = CERT_OPTIONAL: checked when presented)
import os
import ssl


def _key_password() -> str:
    """Called by OpenSSL only when the key is encrypted."""
    password = os.environ.get("GUNICORN_KEY_PASSWORD")
    if password is None:
        raise ValueError("the keyfile is encrypted: set GUNICORN_KEY_PASSWORD")
    return password


def ssl_context(conf, default_ssl_context_factory):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=conf.ca_certs)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=conf.certfile, keyfile=conf.keyfile, password=_key_password)
    context.verify_mode = conf.cert_reqs
    if conf.ciphers:
        context.set_ciphers(conf.ciphers)
    return context
