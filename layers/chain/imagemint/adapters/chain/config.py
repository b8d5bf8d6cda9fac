"""The chain settings, read from ``IMAGEMINT_*`` variables (and :class:`~imagemint.settings.Settings`).

Their own module, apart from the Zora minter: the In Process minter reads the chain id and the RPC
URL here too, without importing web3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from imagemint.errors import MintError

if TYPE_CHECKING:
    from imagemint.settings import Settings


class ChainConfig(BaseModel):
    """Chain settings read from ``IMAGEMINT_*`` variables (rpc mode)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    chain_rpc_url: str = ""
    chain_id: int = 8453
    chain_local_id: int | None = None
    zora_factory_address: str = ""  # default: the Zora factory proxy of chain_id
    signer_key: SecretStr | None = None  # local / tests: a plain hex key
    signer_key_param: str = ""  # AWS: SSM SecureString name, read through Powertools
    chain_max_fee_gwei: Decimal = Field(default=Decimal("0.5"), gt=0)
    chain_max_priority_fee_gwei: Decimal = Field(default=Decimal("0.01"), ge=0)
    # A batch of ten moments needs ~2.0M gas (the batch size follows the cap: ZoraMinter.max_batch).
    chain_gas_limit_cap: int = Field(default=3_000_000, gt=21_000)
    chain_receipt_timeout_s: float = Field(default=60.0, gt=0)
    # A transaction pending this long below the base fee is replaced; a nonce gap this old is filled.
    chain_stuck_after_s: float = Field(default=6.0, gt=0)
    chain_gap_grace_s: float = Field(default=10.0, gt=0)
    contract_uri: str = ""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, settings: Settings | None = None
    ) -> ChainConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            # A field the lead adds to Settings wins over the raw variable.
            value = getattr(settings, name, None) if settings is not None else None
            if value is None:
                value = env.get("IMAGEMINT_" + name.upper())
            if value not in (None, ""):
                values[name] = value
        try:
            return cls(**values)
        except ValidationError as exc:
            names = ", ".join("IMAGEMINT_" + str(e["loc"][0]).upper() for e in exc.errors() if e.get("loc"))
            raise MintError(f"Invalid chain configuration: {names}", reason="config") from None
