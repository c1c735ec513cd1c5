"""Lean/SDK configuration parity, without a server: both clients as fanout wires them
(``create_clients``) from the same environment and AWS config file must send a queue's calls to
the same URL (the SDK's is captured from its ``before-send`` event, so nothing is sent), and the
lean client's proxies and TLS follow botocore's rules."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from aiobotocore.session import AioSession
from botocore.config import Config

from fanout.aws.client import create_clients
from fanout.aws.lean import LeanSQSClient
from fanout.aws.transport import Proxy, ProxyPolicy, Transport, tls_context
from fanout.config import Settings
from fanout.errors import ConfigError

ENDPOINT_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_PROFILE",
)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

# Endpoint URLs by where they are set: FANOUT_ENDPOINT_URL, AWS_ENDPOINT_URL_SQS,
# AWS_ENDPOINT_URL, the profile's endpoint_url, its services section, a named profile's.
FANOUT, ENV_SQS, ENV_ALL, PROFILE, SERVICES, NAMED = (f"http://127.0.0.1:400{i}" for i in range(6))
PROFILE_GLOBAL = f"[default]\nendpoint_url = {PROFILE}\n"
PROFILE_SERVICES = (
    f"[default]\nendpoint_url = {PROFILE}\nservices = local\n"
    f"[services local]\nsqs =\n  endpoint_url = {SERVICES}\n"
)
PROFILE_NAMED = (
    "[profile p2]\nregion = eu-west-1\nservices = p2\n"
    f"[services p2]\nsqs =\n  endpoint_url = {NAMED}\n"
)
PROFILE_IGNORES = PROFILE_GLOBAL + "ignore_configured_endpoint_urls = true\n"
REGIONAL = "https://sqs.eu-west-1.amazonaws.com/"
IGNORE = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"

# (case, env, AWS config file, FANOUT_ENDPOINT_URL, region, expected URL of the queue's calls)
MATRIX: list[tuple[str, dict[str, str], str, str | None, str, str]] = [
    ("nothing configured: regional", {}, "", None, "eu-west-1", REGIONAL),
    ("AWS_ENDPOINT_URL_SQS", {"AWS_ENDPOINT_URL_SQS": ENV_SQS}, "", None, "eu-west-1", ENV_SQS),
    ("AWS_ENDPOINT_URL", {"AWS_ENDPOINT_URL": ENV_ALL}, "", None, "eu-west-1", ENV_ALL),
    (
        "service variable wins over global",
        {"AWS_ENDPOINT_URL_SQS": ENV_SQS, "AWS_ENDPOINT_URL": ENV_ALL},
        "", None, "eu-west-1", ENV_SQS,
    ),
    ("profile endpoint_url", {}, PROFILE_GLOBAL, None, "eu-west-1", PROFILE),
    ("profile services section", {}, PROFILE_SERVICES, None, "eu-west-1", SERVICES),
    (
        "environment wins over profile",
        {"AWS_ENDPOINT_URL": ENV_ALL}, PROFILE_SERVICES, None, "eu-west-1", ENV_ALL,
    ),
    ("named profile (AWS_PROFILE)", {"AWS_PROFILE": "p2"}, PROFILE_NAMED, None, "eu-west-1", NAMED),
    (
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        {IGNORE: "true", "AWS_ENDPOINT_URL_SQS": ENV_SQS}, PROFILE_SERVICES, None, "eu-west-1",
        REGIONAL,
    ),
    (
        "profile ignore_configured_endpoint_urls",
        {"AWS_ENDPOINT_URL_SQS": ENV_SQS}, PROFILE_IGNORES, None, "eu-west-1", REGIONAL,
    ),
    (
        "FANOUT_ENDPOINT_URL wins",
        {"AWS_ENDPOINT_URL_SQS": ENV_SQS}, PROFILE_SERVICES, FANOUT, "eu-west-1", FANOUT,
    ),
    ("FANOUT_ENDPOINT_URL despite ignore", {IGNORE: "true"}, "", FANOUT, "eu-west-1", FANOUT),
    (
        "FIPS",
        {"AWS_USE_FIPS_ENDPOINT": "true"}, "", None, "us-east-2",
        "https://sqs-fips.us-east-2.amazonaws.com/",
    ),
    (
        "dual-stack",
        {"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "", None, "eu-west-1",
        "https://sqs.eu-west-1.api.aws/",
    ),
]  # fmt: skip


class Captured(Exception):
    """Raised from the SDK's before-send event: the request it would send, not sent."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def capture(request: Any, **_: Any) -> None:
    raise Captured(request.url)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for name in ENDPOINT_VARS + PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)

    def apply(env: Mapping[str, str], config_file: str = "") -> None:
        path = tmp_path / "config"
        path.write_text(config_file)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


async def urls_of_both(settings: Settings, queue_url: str) -> tuple[str, str, LeanSQSClient]:
    async with create_clients(settings, aioboto3.Session()) as (sdk, lean):
        assert isinstance(lean, LeanSQSClient)
        sdk.meta.events.register("before-send.sqs.SendMessageBatch", capture)
        with pytest.raises(Captured) as sent:
            await sdk.send_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": "1", "MessageBody": "x"}]
            )
        return sent.value.url, lean.endpoint(queue_url).url, lean


@pytest.mark.parametrize(
    ("env", "config_file", "fanout_endpoint", "region", "expected"),
    [case[1:] for case in MATRIX],
    ids=[case[0] for case in MATRIX],
)
async def test_both_clients_resolve_the_same_endpoint(
    aws_env: Any,
    env: dict[str, str],
    config_file: str,
    fanout_endpoint: str | None,
    region: str,
    expected: str,
) -> None:
    aws_env(env, config_file)
    settings = Settings(endpoint_url=fanout_endpoint, region=region, sqs_client="lean")
    queue_url = f"https://sqs.{region}.amazonaws.com/123456789012/q"
    sdk_url, lean_url, _ = await urls_of_both(settings, queue_url)
    want = expected if expected.endswith("/") else expected + "/"
    assert (sdk_url, lean_url) == (want, want)


async def test_profile_proxy_settings_reach_both_clients(aws_env: Any, tmp_path: Path) -> None:
    """The profile's proxy_ca_bundle: botocore reads it, aiobotocore does not apply it; fanout
    gives it to the SDK client's Config and the lean client's TLS context."""
    import trustme

    bundle = tmp_path / "proxy-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    aws_env({}, f"[default]\nproxy_ca_bundle = {bundle}\n")
    settings = Settings(region="eu-west-1", sqs_client="lean")
    async with create_clients(settings, aioboto3.Session()) as (sdk, lean):
        assert sdk.meta.config.proxies_config == {"proxy_ca_bundle": str(bundle)}
        assert isinstance(lean, LeanSQSClient)
    aws_env({}, "[default]\nproxy_ca_bundle = /nonexistent/proxy-ca.pem\n")
    with pytest.raises(ConfigError, match="proxy_ca_bundle"):
        Transport.resolve(AioSession())


def test_environment_proxies_and_no_proxy(aws_env: Any) -> None:
    aws_env(
        {
            "HTTPS_PROXY": "http://fan:p%40ss@proxy.corp.test:3128",
            "HTTP_PROXY": "http://plain.corp.test:8080",
            "NO_PROXY": "vpce.amazonaws.com,localhost",
        }
    )
    policy = ProxyPolicy()
    found = policy.for_url("https://sqs.eu-west-1.amazonaws.com/")
    assert found is not None
    assert str(found.url) == "http://fan:p%40ss@proxy.corp.test:3128"
    assert found.url.password == "p@ss"  # aiohttp sends user:password as Proxy-Authorization
    assert "p@ss" not in found.masked and "p%40ss" not in found.masked and "***" in found.masked
    assert "p%40ss" not in repr(found)
    plain = policy.for_url("http://127.0.0.1:4566/")
    assert plain is not None and plain.url.host == "plain.corp.test"
    assert policy.for_url("https://vpce-1-a.sqs.eu-west-1.vpce.amazonaws.com/") is None
    assert policy.for_url("http://localhost:4566/") is None


def test_config_proxies_replace_the_environment(aws_env: Any) -> None:
    aws_env({"HTTPS_PROXY": "http://env.corp.test:3128", "NO_PROXY": "amazonaws.com"})
    policy = ProxyPolicy({"https": "proxy.config.test:8443"})
    found = policy.for_url("https://sqs.eu-west-1.amazonaws.com/")
    # botocore: Config.proxies are used as given (NO_PROXY applies to the environment's only);
    # a proxy without a scheme is http://
    assert found == Proxy(url=found.url, masked="http://proxy.config.test:8443")
    assert str(found.url) == "http://proxy.config.test:8443"
    assert ProxyPolicy({}).for_url("https://sqs.eu-west-1.amazonaws.com/") is None


def test_transport_reads_client_config_proxies(aws_env: Any) -> None:
    aws_env({})
    config = Config(proxies={"https": "http://cfg.test:3128"})
    transport = Transport.resolve(AioSession(), config)
    found = transport.proxies.for_url("https://sqs.eu-west-1.amazonaws.com/")
    assert found is not None and found.url.host == "cfg.test"


def test_tls_context_always_verifies(tmp_path: Path) -> None:
    import trustme

    proxy_ca = tmp_path / "proxy-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(proxy_ca))
    for settings in ({}, {"proxy_ca_bundle": str(proxy_ca)}):
        context = tls_context(None, settings)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with pytest.raises(ConfigError, match="AWS_CA_BUNDLE"):
        tls_context(str(tmp_path / "missing.pem"), {})


def test_all_proxy_is_ignored_as_by_botocore(aws_env: Any) -> None:
    aws_env({"ALL_PROXY": "http://all.corp.test:3128"})
    assert ProxyPolicy().for_url("https://sqs.eu-west-1.amazonaws.com/") is None


async def test_sdk_client_verifies_through_proxies_by_default(aws_env: Any, tmp_path: Path) -> None:
    """With no proxy_ca_bundle configured, the trust store is the SDK client's, so aiobotocore
    keeps TLS verification on through a proxy (tested end to end in test_client_transport)."""
    import trustme

    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    aws_env({"AWS_CA_BUNDLE": str(bundle)})
    async with create_clients(Settings(region="eu-west-1"), aioboto3.Session()) as (sdk, _):
        assert sdk.meta.config.proxies_config == {"proxy_ca_bundle": str(bundle)}
