"""Credentials for the lean client: botocore's standard provider chain, read per call.

The chain (env, shared files, SSO, assume-role, web identity/IRSA, EKS Pod Identity, ECS
container credentials, instance metadata) is aiobotocore's, so fanout resolves exactly what
the SDK would. Temporary credentials come back as ``AioRefreshableCredentials``: each call
takes ``await get_frozen_credentials()``, which refreshes them inside botocore's advisory
window (15 min before expiry) and blocks only in the mandatory one (10 min), so a long-running
fanout never signs with a snapshot taken at start.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiobotocore.credentials import AioCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import NoCredentialsError


class _Resolved(Protocol):
    async def get_frozen_credentials(self) -> ReadOnlyCredentials: ...


class CredentialSource:
    """One consistent (access key, secret, token) snapshot per request, refreshed as needed."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: _Resolved | None) -> None:
        self._credentials = credentials

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
        return cls(credentials)

    async def frozen(self) -> ReadOnlyCredentials:
        """The credentials to sign this request with; ``NoCredentialsError`` if the chain found
        none (classified as not retryable, like the SDK's)."""
        if self._credentials is None:
            raise NoCredentialsError()
        return await self._credentials.get_frozen_credentials()
