"""The redrive scenario on LocalStack: a target deleted mid-run fills the DLQ, it comes back,
`fanout dlq inspect` consumes nothing, `fanout dlq redrive --target T` delivers exactly the
missing copies and empties the DLQ."""

from __future__ import annotations

import orjson

import tests.integration.test_dlq_tools as dlq
from tests.support.harness import Harness, ids_of, simplified


async def test_redrive_after_a_target_came_back(ls_harness: Harness) -> None:
    h = ls_harness
    urls = await dlq.setup(h)
    events = [simplified("critical") for _ in range(12)]  # critical + standard + ledger
    await dlq.fill_dlq(h, urls, ("critical",), events)
    standard = sorted(ids_of(await dlq.peek(h, urls["standard"])))
    assert standard == sorted(e["id"] for e in events)

    code, out, err = await dlq.fanout("dlq", "inspect", *dlq.common(h, urls), "--json")
    assert code == 0, err
    assert orjson.loads(out)["by_failed_target"] == {"critical": 12}
    assert await h.depth(urls["dlq"]) == (12, 0)

    code, out, err = await dlq.fanout(
        "dlq", "redrive", *dlq.common(h, urls), "--rules", str(urls["rules"]),
        "--target", "critical", "--no-progress", "--rate", "50",
    )  # fmt: skip
    assert code == 0, err + out
    assert sorted(ids_of(await h.drain(urls["critical"]))) == sorted(e["id"] for e in events)
    assert await h.depth(urls["dlq"]) == (0, 0)
    # The targets that had their copy got no second one.
    assert sorted(ids_of(await h.drain(urls["standard"]))) == standard
    assert len(await h.drain(urls["ledger"])) == 12
