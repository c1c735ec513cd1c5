"""How the data plane reaches SQS: endpoint, proxies and trust store, as botocore resolves them.

The lean client (``fanout.aws.lean``) is built from the same botocore session and client
``Config`` as the SDK client (``fanout.aws.client``), and each part comes from botocore's own
functions, so both clients reach the same endpoint through the same proxy:

- endpoint: FANOUT_ENDPOINT_URL, else (unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` /
  ``ignore_configured_endpoint_urls``) ``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL``, the
  profile's ``services`` section or ``endpoint_url`` (``ConfiguredEndpointProvider``), else the
  regional endpoint from botocore's table (FIPS / dual-stack honoured);
- proxies: the ``Config``'s ``proxies``, else ``HTTP_PROXY`` / ``HTTPS_PROXY`` with
  ``NO_PROXY`` (``get_environ_proxies``); the scheme's proxy (``ProxyConfiguration``: not
  ``ALL_PROXY``), its URL's user info sent as ``Proxy-Authorization``; ``proxy_ca_bundle`` and
  ``proxy_client_cert`` from the ``Config``'s ``proxies_config``, else from the profile;
- trust store: ``AWS_CA_BUNDLE`` / ``ca_bundle``, else botocore's default bundle.

TLS: the lean client always verifies the server's chain and host name. aiobotocore (2.25)
checks neither through a proxy unless ``proxy_ca_bundle`` or ``proxy_client_cert`` is set
(``AIOHTTPSession._create_connector``), and never the host name (its context has
``check_hostname`` off); fanout's SDK client gets both (``VerifyingAIOHTTPSession`` and a
``proxy_ca_bundle`` default in ``fanout.aws.client.session_config``).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.configprovider import ConfiguredEndpointProvider
from botocore.httpsession import (
    ProxyConfiguration,
    create_urllib3_context,
    get_cert_path,
    mask_proxy_url,
)
from botocore.regions import EndpointResolver
from botocore.utils import get_environ_proxies
from yarl import URL

from fanout.errors import ConfigError

SERVICE = "sqs"
PROXY_SETTINGS = ("proxy_ca_bundle", "proxy_client_cert", "proxy_use_forwarding_for_https")


def botocore_session(session: Any) -> AioSession:
    """The AioSession inside an ``aioboto3.Session`` (boto3's ``_session``), or the AioSession."""
    inner = getattr(session, "_session", session)
    if not isinstance(inner, AioSession):
        raise TypeError(f"not an aioboto3/aiobotocore session: {type(session).__name__}")
    return inner


def option(config: Config | None, name: str) -> Any:
    """A client Config option (botocore sets them dynamically: the stubs do not list all)."""
    return getattr(config, name, None) if config is not None else None


def configured_endpoint_url(
    session: AioSession, config: Config | None, endpoint_url: str | None
) -> str | None:
    """The endpoint every call goes to, or None for the regional ones: botocore's rule
    (``ClientArgsCreator._compute_configured_endpoint_url``) with botocore's provider."""
    if endpoint_url:
        return endpoint_url
    ignore = option(config, "ignore_configured_endpoint_urls")
    if ignore is None:
        ignore = session.get_config_variable("ignore_configured_endpoint_urls")
    if ignore:
        return None
    provider = ConfiguredEndpointProvider(
        full_config=session.full_config,
        scoped_config=session.get_scoped_config(),
        client_name=SERVICE,
    )
    found = provider.provide()
    return str(found) if found else None


def proxies_settings(session: AioSession, config: Config | None) -> dict[str, Any]:
    """``proxies_config`` of the client Config, else the profile's ``proxy_ca_bundle`` /
    ``proxy_client_cert`` / ``proxy_use_forwarding_for_https`` (botocore's config store reads
    them; aiobotocore's client does not apply them, fanout gives them to both clients)."""
    configured = option(config, "proxies_config")
    if configured:
        return dict(configured)
    from_profile = session.get_config_variable("proxies_config") or {}
    return {k: v for k, v in dict(from_profile).items() if k in PROXY_SETTINGS and v is not None}


@dataclass(frozen=True, slots=True)
class Proxy:
    """The forwarding proxy for one endpoint. ``url`` keeps its user info: aiohttp sends it as
    ``Proxy-Authorization``, on forwarded requests and on CONNECT alike (its ``proxy_headers``
    reach only CONNECT); ``masked`` is for messages."""

    url: URL = field(repr=False)
    masked: str


class ProxyPolicy:
    """Which proxy a request to an endpoint goes through, decided as aiobotocore does.

    Parameters:
        proxies: the client Config's ``{scheme: proxy URL}``; None: the environment's, less
            the hosts ``NO_PROXY`` names (botocore's ``get_environ_proxies``).
        settings: ``proxies_config`` (``proxy_ca_bundle``, ``proxy_client_cert``).
    """

    __slots__ = ("_proxies", "_settings")

    def __init__(
        self, proxies: Mapping[str, str] | None = None, settings: Mapping[str, Any] | None = None
    ) -> None:
        self._proxies = dict(proxies) if proxies is not None else None
        self._settings = dict(settings or {})

    @property
    def settings(self) -> Mapping[str, Any]:
        return self._settings

    def for_url(self, url: str) -> Proxy | None:
        """Resolved once per endpoint (the lean client caches it with the endpoint)."""
        proxies = self._proxies if self._proxies is not None else get_environ_proxies(url)
        config = ProxyConfiguration(proxies=dict(proxies), proxies_settings=self._settings)
        proxy_url = config.proxy_url_for(url)
        if not proxy_url:
            return None
        return Proxy(url=URL(proxy_url), masked=mask_proxy_url(proxy_url))


def tls_context(ca_bundle: str | None, settings: Mapping[str, Any]) -> ssl.SSLContext:
    """A context that verifies the server's chain and host name, direct or through a proxy.

    Trusts ``ca_bundle`` (else botocore's default bundle) and, for an HTTPS proxy, its
    ``proxy_ca_bundle``; presents ``proxy_client_cert`` to a proxy that asks for one. aiohttp
    uses one context for the proxy's TLS and the tunnelled server's, as aiobotocore does."""
    cafile = ca_bundle or get_cert_path(True)
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"CA bundle {cafile}: {exc}; fix AWS_CA_BUNDLE or ca_bundle in the AWS config"
        ) from exc
    proxy_ca = settings.get("proxy_ca_bundle")
    proxy_cert = settings.get("proxy_client_cert")
    try:
        if proxy_ca:
            context.load_verify_locations(cafile=proxy_ca)
        if isinstance(proxy_cert, tuple | list):
            context.load_cert_chain(proxy_cert[0], keyfile=proxy_cert[1])
        elif proxy_cert:
            context.load_cert_chain(proxy_cert)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"proxy TLS settings {settings}: {exc}; fix proxy_ca_bundle / proxy_client_cert "
            "in the AWS config"
        ) from exc
    return context


@dataclass(frozen=True, slots=True)
class Transport:
    """What the lean client needs to reach SQS, resolved from the SDK client's session and
    Config (``Transport.resolve``).

    Parameters:
        endpoint_url: the endpoint for every queue, or None: each queue's regional endpoint.
        resolver: botocore's endpoints table (None when ``endpoint_url`` is set).
        use_fips, use_dualstack: the endpoint variant (AWS_USE_FIPS_ENDPOINT, ...).
        proxies: the proxy of each endpoint.
        tls: the trust store and verification for every connection.
    """

    endpoint_url: str | None
    resolver: EndpointResolver | None
    use_fips: bool
    use_dualstack: bool
    proxies: ProxyPolicy
    tls: ssl.SSLContext

    @classmethod
    def resolve(
        cls,
        session: AioSession,
        config: Config | None = None,
        endpoint_url: str | None = None,
    ) -> Transport:
        endpoint = configured_endpoint_url(session, config, endpoint_url)
        settings = proxies_settings(session, config)

        def flag(name: str) -> bool:
            value = option(config, name)
            if value is None:
                value = session.get_config_variable(name)
            return bool(value)

        return cls(
            endpoint_url=endpoint,
            resolver=None if endpoint else EndpointResolver(session.get_data("endpoints")),
            use_fips=flag("use_fips_endpoint"),
            use_dualstack=flag("use_dualstack_endpoint"),
            proxies=ProxyPolicy(option(config, "proxies"), settings),
            tls=tls_context(session.get_config_variable("ca_bundle"), settings),
        )


class VerifyingAIOHTTPSession(AIOHTTPSession):
    """aiobotocore's HTTP session, checking the server's host name too (AioConfig's
    ``http_session_cls``). aiobotocore builds its TLS contexts with urllib3's recipe, which
    leaves the host-name check to urllib3; aiohttp does not do it, so nothing did: a trusted
    CA's certificate for any host was accepted (tests/integration/test_client_transport.py)."""

    def _get_ssl_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = create_urllib3_context()  # what aiobotocore's returns
        context.check_hostname = True
        return context
