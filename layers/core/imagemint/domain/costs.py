"""What a job's provenance cost: Arweave rewards and its share of the mint's gas, with USD estimates.

Pure functions of step outcomes and job records (no SDK, no store): the archive and mint steps
(:mod:`imagemint.domain.provenance`) record each part on the job, the Record step and the job views
sum them.
"""

from __future__ import annotations

from typing import Any


def prices(settings: Any) -> dict[str, Any]:
    return {"ETH": settings.price_eth_usd, "AR": settings.price_ar_usd, "estimate": True}


def archive_cost(record: Any, settings: Any) -> dict[str, Any]:
    """One Arweave item's cost: its reward (winston) and a USD estimate at the configured AR price."""
    winston = int(record.reward or 0)
    usd = winston / 10**12 * settings.price_ar_usd
    return {"id": record.id, "reward_winston": str(winston), "usd_estimate": round(usd, 8)}


def mint_cost(outcome: Any, settings: Any) -> dict[str, Any]:
    """A job's share of the transactions that minted its moment (``MintOutcome.costs``), in wei and USD."""
    txs = [dict(tx) for tx in getattr(outcome, "costs", ()) or ()]
    share = sum(int(tx["fee_wei"]) // max(1, int(tx.get("moments") or 1)) for tx in txs)
    gas = sum(int(tx["gas_used"]) // max(1, int(tx.get("moments") or 1)) for tx in txs)
    usd = share / 10**18 * settings.price_eth_usd
    return {"transactions": txs, "gas_share": gas, "fee_share_wei": str(share), "usd_estimate": round(usd, 8)}


def provenance_cost(job: Any) -> dict[str, Any] | None:
    """What a job's provenance cost: the Arweave reward of each item it stored and its share of the mint.

    The USD figures are ESTIMATES at the prices configured when each step ran
    (``IMAGEMINT_PRICE_ETH_USD``, ``IMAGEMINT_PRICE_AR_USD``), not market prices.
    None when nothing was stored or minted.
    """
    data = job.model_dump() if hasattr(job, "model_dump") else dict(job or {})
    items = [
        {"slot": key.removeprefix("archive_cost_"), **value}
        for key, value in sorted(data.items())
        if key.startswith("archive_cost_") and isinstance(value, dict)
    ]
    mint = data.get("mint_cost") if isinstance(data.get("mint_cost"), dict) else None
    if not items and mint is None:
        return None
    winston = sum(int(i.get("reward_winston") or 0) for i in items)
    usd = sum(float(i.get("usd_estimate") or 0) for i in items) + float((mint or {}).get("usd_estimate") or 0)
    return {"arweave": items, "arweave_winston": str(winston), "mint": mint, "usd_estimate": round(usd, 8)}
