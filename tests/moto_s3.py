"""A local moto S3 server for the object-store tests, configured the way users configure theirs: AWS_*
variables (and nothing else of the caller's AWS setup)."""

import logging
from contextlib import contextmanager


@contextmanager
def moto_s3(monkeypatch, bucket: str):
    """Start a moto server on 127.0.0.1, point the AWS_* variables at it, create `bucket`; yields the
    endpoint URL."""
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ALLOW_HTTP",
              "MSTAR_STORE", "MSTAR_ARTIFACTS"):
        monkeypatch.delenv(k, raising=False)
    try:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)  # the server keeps moto's state for the process
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
