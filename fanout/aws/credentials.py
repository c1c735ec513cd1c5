"""Credentials for the lean client: botocore's standard provider chain, read per call.

The chain (env, shared files, SSO, assume-role, web identity/IRSA, EKS Pod Identity, ECS
container credentials, instance metadata) is aiobotocore's, so fanout resolves exactly what
the SDK would. Temporary credentials come back as ``AioRefreshableCredentials``: each call
takes ``await get_frozen_credentials()``, which refreshes them inside botocore's advisory
window (15 min before expiry) and blocks only in the mandatory one (10 min), so a long-running
fanout never signs with a snapshot taken at start.

When SQS refuses them anyway (ExpiredToken: the credential expired before botocore's refresh
landed, or was revoked), ``refresh`` forces a new fetch; ``refresher_for`` does the same for
either data-plane client (fanout.aws.outage calls it before probing again).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiobotocore.credentials import AioCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import NoCredentialsError


class _Resolved(Protocol):
    async def get_frozen_credentials(self) -> ReadOnlyCredentials: ...


class CredentialSource:
    """One consistent (access key, secret, token) snapshot per request, refreshed as needed."""

    __slots__ = ("_credentials", "_session")

    def __init__(self, credentials: _Resolved | None, session: AioSession | None = None) -> None:
        self._credentials = credentials
        self._session = session  # to resolve the chain again (None: explicit keys)

    @classmethod
    async def resolve(
        cls,
        session: AioSession | None = None,
        *,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
    ) -> CredentialSource:
        """Explicit keys (the embedded local run's dummy ones), else the provider chain."""
        if aws_access_key_id and aws_secret_access_key:
            return cls(AioCredentials(aws_access_key_id, aws_secret_access_key, aws_session_token))
        session = session or AioSession()
        credentials: Any = await session.get_credentials()
        return cls(credentials, session)

    async def refresh(self) -> None:
        """Fetch new credentials now: temporary ones are refreshed at once (not in botocore's
        advisory window); static ones are resolved again from the chain (a rotated shared
        credentials file). Explicit keys stay as they are. Raises what the provider raises."""
        if await force_refresh(self._credentials) or self._session is None:
            return
        resolver = self._session.get_component("credential_provider")
        self._credentials = await resolver.load_credentials()

    async def frozen(self) -> ReadOnlyCredentials:
        """The credentials to sign this request with; ``NoCredentialsError`` if the chain found
        none (classified as not retryable, like the SDK's)."""
        if self._credentials is None:
            raise NoCredentialsError()
        return await self._credentials.get_frozen_credentials()


async def force_refresh(credentials: object) -> bool:
    """Refresh temporary (refreshable) credentials now; False if they are not refreshable.

    botocore has no public "refresh now": ``_protected_refresh(is_mandatory=True)`` is what its
    own mandatory window calls. Private API: if it goes away, this returns False and the
    credentials refresh on botocore's schedule alone."""
    refresh = getattr(credentials, "_protected_refresh", None)
    if not callable(refresh):
        return False
    result = refresh(is_mandatory=True)
    if inspect.isawaitable(result):
        await result
    return True


def refresher_for(client: object) -> Callable[[], Awaitable[None]]:
    """How to force a credential refresh for a data-plane client: the lean client's own
    ``refresh_credentials``, else (aiobotocore) its request signer's credentials."""
    own = getattr(client, "refresh_credentials", None)
    if callable(own):
        return own  # type: ignore[no-any-return]
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)

    async def refresh() -> None:
        await force_refresh(credentials)

    return refresh
