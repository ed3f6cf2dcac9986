"""An S3-compatible server on 127.0.0.1 for the tests (moto's, from the dev extra), and the
standard AWS environment pointing at it: nothing beyond loopback is reached."""

from __future__ import annotations

import logging
import uuid

import pytest

_SERVER: dict = {}


def endpoint() -> str:
    """The server's URL, started once per test session."""
    if "url" not in _SERVER:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            pytest.skip("moto is not installed (the dev extra installs moto[s3,server])")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        _SERVER.update(server=server, url=f"http://{host}:{port}")
    return _SERVER["url"]


def aws_environment(url: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
    }


@pytest.fixture
def bucket(monkeypatch) -> str:
    """A new, empty bucket on the loopback server, as s3://NAME; the AWS environment (inherited by
    worker processes and subprocesses) points at the server."""
    url = endpoint()
    for k, v in aws_environment(url).items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    from corral.core import s3

    s3.reset()
    name = f"corral-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    yield f"s3://{name}"
    s3.reset()
