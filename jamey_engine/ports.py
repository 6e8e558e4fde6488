"""The default port of each part of Jamey, declared once. The settings' defaults, the local
stack, the nginx configuration, the CLI's help and the clients' defaults all read these.

Over TLS one port means one thing everywhere: ``NGINX_HTTPS`` (8443) is the API and
``NGINX_WORKBENCH`` (8444) the workbench, under ``jamey stack --tls`` as in the rendered nginx
configuration of a server (where the API also answers on 443).
"""

from __future__ import annotations

SERVICE = 3000  # jamey serve
WORKBENCH = 8501  # the Streamlit workbench
PROMETHEUS = 9090
ALERTMANAGER = 9093
NGINX_HTTP = 8080  # plain HTTP: redirects to HTTPS only
NGINX_HTTPS = 8443  # the API over TLS
NGINX_WORKBENCH = 8444  # the workbench over TLS (websocket included)
DOCS = 8000  # make docs-serve

LOCALHOST = "127.0.0.1"


def local_url(port: int) -> str:
    """``http://127.0.0.1:<port>``: where a part of the local stack answers by default."""
    return f"http://{LOCALHOST}:{port}"
