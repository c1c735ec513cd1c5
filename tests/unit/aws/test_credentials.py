"""Credentials are read per call: temporary ones are refreshed before they expire."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.exceptions import NoCredentialsError

from fanout.aws.credentials import CredentialSource, force_refresh, refresher_for

START = datetime.datetime(2024, 5, 17, 12, 0, tzinfo=datetime.UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime.datetime:
        return self.now


class ExpiringProvider:
    """Like STS/IRSA/ECS: each fetch returns new keys valid for one hour from 'now'."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fetches = 0

    async def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        return {
            "access_key": f"AKID{self.fetches}",
            "secret_key": f"secret{self.fetches}",
            "token": f"token{self.fetches}",
            "expiry_time": (self.clock.now + datetime.timedelta(hours=1)).isoformat(),
        }


async def refreshable(clock: FakeClock, provider: ExpiringProvider) -> AioRefreshableCredentials:
    metadata = await provider()
    return AioRefreshableCredentials(
        access_key=metadata["access_key"],
        secret_key=metadata["secret_key"],
        token=metadata["token"],
        expiry_time=datetime.datetime.fromisoformat(metadata["expiry_time"]),
        refresh_using=provider,
        method="fake-expiring",
        time_fetcher=clock,
    )


async def test_refreshed_before_expiry_never_a_start_snapshot() -> None:
    clock = FakeClock()
    provider = ExpiringProvider(clock)
    source = CredentialSource(await refreshable(clock, provider))

    first = await source.frozen()
    assert (first.access_key, first.secret_key, first.token) == ("AKID1", "secret1", "token1")

    clock.now = START + datetime.timedelta(minutes=30)  # well before expiry: same keys
    assert (await source.frozen()).access_key == "AKID1"
    assert provider.fetches == 1

    # 55 minutes in: inside botocore's refresh window, still 5 minutes before expiry.
    clock.now = START + datetime.timedelta(minutes=55)
    second = await source.frozen()
    assert (second.access_key, second.secret_key, second.token) == ("AKID2", "secret2", "token2")
    assert provider.fetches == 2

    # The next expiry is an hour after the refresh: no refresh in between.
    clock.now = START + datetime.timedelta(minutes=90)
    assert (await source.frozen()).access_key == "AKID2"
    clock.now = START + datetime.timedelta(hours=3)  # long idle, past expiry: refreshed again
    assert (await source.frozen()).access_key == "AKID3"


async def test_failed_refresh_in_mandatory_window_raises() -> None:
    clock = FakeClock()
    provider = ExpiringProvider(clock)
    credentials = await refreshable(clock, provider)

    async def broken() -> dict[str, Any]:
        raise OSError("metadata endpoint down")

    credentials._refresh_using = broken
    source = CredentialSource(credentials)
    clock.now = START + datetime.timedelta(minutes=58)  # 2 minutes left: must refresh
    with pytest.raises(OSError, match="metadata endpoint down"):
        await source.frozen()


async def test_chain_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    frozen = await (await CredentialSource.resolve(AioSession())).frozen()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("AKIDENV", "envsecret", None)


async def test_explicit_keys_win() -> None:
    source = await CredentialSource.resolve(
        aws_access_key_id="local", aws_secret_access_key="localsecret"
    )
    frozen = await source.frozen()
    assert (frozen.access_key, frozen.secret_key) == ("local", "localsecret")


async def test_no_credentials() -> None:
    with pytest.raises(NoCredentialsError):
        await CredentialSource(None).frozen()


async def test_a_forced_refresh_fetches_new_keys_at_once() -> None:
    # SQS refused the keys (ExpiredToken) though botocore thinks they have 30 minutes left.
    clock = FakeClock()
    provider = ExpiringProvider(clock)
    source = CredentialSource(await refreshable(clock, provider))
    clock.now = START + datetime.timedelta(minutes=30)
    await source.refresh()
    assert provider.fetches == 2
    assert (await source.frozen()).access_key == "AKID2"


async def test_a_refresh_resolves_static_keys_again_from_the_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOLD")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "old")
    source = await CredentialSource.resolve(AioSession())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDNEW")  # e.g. a rotated credentials file
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "new")
    assert (await source.frozen()).access_key == "AKIDOLD"
    await source.refresh()
    assert (await source.frozen()).access_key == "AKIDNEW"


async def test_the_sdk_clients_refresher_refreshes_its_signers_credentials() -> None:
    clock = FakeClock()
    provider = ExpiringProvider(clock)
    credentials = await refreshable(clock, provider)

    class Signer:
        _credentials = credentials

    class SdkLike:
        _request_signer = Signer()

    await refresher_for(SdkLike())()
    assert provider.fetches == 2
    assert not await force_refresh(object())  # static credentials: nothing to refresh
