"""Moments through In Process's own HTTP API (``chain_mode=inprocess``).

In Process (docs.inprocess.world, "Create a Moment") creates a moment with no signature from us:
``POST {base}/api/moment/create`` with::

    {"account": <creator>, "contract": {"address"} | {"name", "uri"},
     "token": {"tokenMetadataURI", "createReferral", "salesConfig", "mintToCreatorCount",
               "payoutRecipient"?, "maxSupply"?}, "splits"?}

and answers ``{contractAddress, tokenId, hash, chainId}`` (the legacy ``moment`` itself);
``POST {base}/api/moment/create/simulate`` takes the same body and validates it (an ``eth_call`` and
a prepared user operation) without sending anything. A body the API refuses is a 400
``{"message": "Invalid input", "errors": [{"field", "message"}]}``; anything else that fails is a
500 ``{"message"}``. ``GET {base}/api/timeline?collection=|artist=&chain_id=&hidden=true&page=``
lists moments (``address``, ``token_id``, ``chain_id``, ``uri``): it is how a re-run finds the
moment of a create whose answer was lost.

In Process sponsors the gas; the moment appears on its timeline. We trust its answer: when an RPC
URL is configured (``IMAGEMINT_CHAIN_RPC_URL``) the token's ``uri(tokenId)`` is read back on chain
(:meth:`InProcessMinter.check_onchain`, and the verify path through :func:`chain_reader`);
without one the job says plainly that the moment was not checked on chain.

Budget: every call of one mint step run shares one deadline (``IMAGEMINT_INPROCESS_TIMEOUT_S``,
under the ASL's 20 s Mint task); nothing is retried here (the state machine retries the step).
Every failure is :class:`~imagemint.errors.MintError` with a ``reason`` and ``sent``: False when the
create request surely created nothing (refused, never connected, or only the simulation ran).
stdlib ``urllib`` only: the chain layer ships no other HTTP client besides web3's.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagemint.adapters.chain.config import ChainConfig
from imagemint.domain.ports import Moment
from imagemint.errors import MintError

if TYPE_CHECKING:
    from imagemint.settings import Settings

ZERO_ADDRESS = "0x" + "0" * 40
UINT64_MAX = str(2**64 - 1)
#: Pages of the timeline a lookup reads at most (100 moments each).
MAX_LOOKUP_PAGES = 10
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_TOKEN_ID = re.compile(r"^[0-9]{1,78}$")
_NO_RPC = (
    "No RPC URL is configured (IMAGEMINT_CHAIN_RPC_URL): the token's on-chain uri was not read back; "
    "the moment is In Process's answer, not checked on chain"
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer we do not follow (3xx -> bad_answer)


class _Transport(Exception):
    """No HTTP answer: ``connect`` (nothing was sent), ``timeout`` or ``lost`` (maybe it arrived)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def _address(value: str, name: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise MintError(f"{name} is not an address: {value!r}", reason="bad_address", sent=False)
    return value


class InProcessMinter:
    """The :class:`~imagemint.domain.ports.HostedMomentMinter` of In Process (see module doc)."""

    hosted = True

    def __init__(
        self,
        base_url: str,
        *,
        chain_id: int = 8453,
        default_account: str = "",
        budget_s: float = 15.0,
        reader: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.chain_id = int(chain_id)
        self.default_account = default_account
        self.budget_s = float(budget_s)
        self.reader = reader
        self._clock = clock
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    @classmethod
    def from_settings(cls, settings: Settings) -> InProcessMinter:
        return cls(
            settings.inprocess_base_url,
            chain_id=ChainConfig.from_env(None, settings).chain_id,
            default_account=settings.inprocess_default_account,
            budget_s=settings.inprocess_timeout_s,
            reader=_reader_or_none(settings),
        )

    # ------------------------------------------------------------------ the port

    def request(
        self,
        metadata_uri: str,
        account: str,
        collection: str | None,
        collection_name: str,
        collection_uri: str,
    ) -> dict[str, Any]:
        account = _address(account, "account")
        if not metadata_uri:
            raise MintError("metadata_uri is empty", reason="config", sent=False)
        contract: dict[str, Any] = (
            {"address": _address(collection, "collection")}
            if collection
            else {"name": collection_name[:100], "uri": collection_uri}
        )
        return {
            "account": account,
            "contract": contract,
            "token": {
                "tokenMetadataURI": metadata_uri,
                "createReferral": ZERO_ADDRESS,
                # Free to collect, open from now, never closing (uint64 max, as In Process's SDK does).
                "salesConfig": {
                    "type": "fixedPrice",
                    "pricePerToken": "0",
                    "saleStart": str(int(time.time())),
                    "saleEnd": UINT64_MAX,
                },
                "mintToCreatorCount": 1,
                "payoutRecipient": account,
            },
        }

    def create(self, body: dict[str, Any], *, before_send: Callable[[], None], deadline: float) -> Moment:
        status, data = self._post("/api/moment/create/simulate", body, deadline, sent_if_unanswered=False)
        self._refuse_unless_ok(status, data, "simulate", sent=False)
        before_send()
        status, data = self._post("/api/moment/create", body, deadline, sent_if_unanswered=True)
        self._refuse_unless_ok(status, data, "create", sent=status >= 500)
        return self._moment(data)

    def find(
        self, account: str, collection: str | None, metadata_uri: str, *, deadline: float
    ) -> Moment | None:
        query: dict[str, Any] = {"chain_id": self.chain_id, "hidden": "true", "limit": 100}
        if collection:
            query["collection"] = collection
        else:
            query["artist"] = account
        for page in range(1, MAX_LOOKUP_PAGES + 1):
            try:
                status, data = self._call("GET", "/api/timeline", {**query, "page": page}, None, deadline)
            except _Transport as exc:
                raise MintError(
                    f"In Process's timeline did not answer ({exc.kind}): {exc}; "
                    "the moment cannot be looked up now",
                    reason="timeout" if exc.kind == "timeout" else "upstream_error",
                    sent=True,
                ) from None
            if status != 200 or not isinstance(data, dict):
                raise MintError(
                    f"In Process's timeline answered {status}; the moment cannot be looked up now",
                    reason="upstream_error",
                    status=status,
                    sent=True,
                )
            for item in data.get("moments") or []:
                if isinstance(item, dict) and item.get("uri") == metadata_uri:
                    return self._listed(item)
            total = (data.get("pagination") or {}).get("total_pages")
            if not isinstance(total, int) or page >= total:
                return None
        return None

    def check_onchain(self, moment: Moment, metadata_uri: str) -> dict[str, Any]:
        if self.reader is None:
            return {"checked": False, "verified": False, "note": _NO_RPC}
        try:
            uri = self.reader.token_uri(moment.contractAddress, int(moment.tokenId))
        except Exception as exc:  # the node cannot answer now: say so, the moment stands
            return {
                "checked": False,
                "verified": False,
                "note": f"uri(tokenId) could not be read: {exc}"[:300],
            }
        return {"checked": True, "verified": uri == metadata_uri, "onchain_uri": uri}

    # ------------------------------------------------------------------ HTTP

    def _post(
        self, path: str, body: dict[str, Any], deadline: float, *, sent_if_unanswered: bool
    ) -> tuple[int, Any]:
        try:
            return self._call("POST", path, None, body, deadline)
        except _Transport as exc:
            reason = "timeout" if exc.kind == "timeout" else "upstream_error"
            what = "create" if path.endswith("/create") else "simulate"
            raise MintError(
                f"In Process's {what} did not answer ({exc.kind}): {exc}",
                reason=reason,
                sent=sent_if_unanswered and exc.kind != "connect",
            ) from None

    def _call(
        self, method: str, path: str, query: dict[str, Any] | None, body: Any, deadline: float
    ) -> tuple[int, Any]:
        remaining = deadline - self._clock()
        if remaining <= 0.05:
            raise _Transport("connect", "the mint step's budget for In Process is spent")
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        # The scheme is the settings' (https, or http to a loopback stub): never file: or custom ones.
        req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with self._opener.open(req, timeout=remaining) as resp:
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            return exc.code, _json(raw)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError | socket.timeout):
                raise _Transport("timeout", str(reason)) from None
            if isinstance(reason, ConnectionRefusedError | socket.gaierror):
                raise _Transport("connect", str(reason)) from None
            raise _Transport("lost", str(reason)) from None
        except TimeoutError as exc:
            raise _Transport("timeout", str(exc) or "timed out") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise _Transport("lost", str(exc) or type(exc).__name__) from None

    # ------------------------------------------------------------------ answers

    @staticmethod
    def _refuse_unless_ok(status: int, data: Any, what: str, *, sent: bool) -> None:
        if 200 <= status < 300:
            return
        message = data.get("message") if isinstance(data, dict) else None
        errors = data.get("errors") if isinstance(data, dict) else None
        text = f"In Process's {what} answered {status}: {message or 'no message'}"
        if isinstance(errors, list) and errors:
            fields = "; ".join(
                f"{e.get('field')}: {e.get('message')}" for e in errors[:5] if isinstance(e, dict)
            )
            text += f" ({fields})"
        reason = "refused" if 400 <= status < 500 else ("upstream_error" if status >= 500 else "bad_answer")
        raise MintError(text[:500], reason=reason, status=status, sent=sent)

    def _moment(self, data: Any) -> Moment:
        bad = MintError(
            "In Process's create answered 2xx without a moment {contractAddress, tokenId, hash, chainId}",
            reason="bad_answer",
            sent=True,
        )
        if not isinstance(data, dict):
            raise bad
        contract, token_id, tx, chain_id = (
            data.get(k) for k in ("contractAddress", "tokenId", "hash", "chainId")
        )
        token_id = str(token_id) if isinstance(token_id, int | str) else ""
        if not (
            isinstance(contract, str)
            and _ADDRESS.match(contract)
            and _TOKEN_ID.match(token_id)
            and isinstance(tx, str)
            and _HASH.match(tx)
            and isinstance(chain_id, int)
        ):
            raise bad
        return Moment(contractAddress=contract, tokenId=token_id, hash=tx, chainId=chain_id)

    def _listed(self, item: dict[str, Any]) -> Moment:
        """A timeline entry as a moment (the timeline has no transaction hash: ``hash`` is empty)."""
        contract = item.get("address")
        token_id = str(item.get("token_id", item.get("tokenId", "")))
        chain_id = item.get("chain_id", item.get("chainId", self.chain_id))
        if not (isinstance(contract, str) and _ADDRESS.match(contract) and _TOKEN_ID.match(token_id)):
            raise MintError("In Process's timeline listed a malformed moment", reason="bad_answer", sent=True)
        return Moment(contractAddress=contract, tokenId=token_id, hash="", chainId=int(chain_id))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _reader_or_none(settings: Settings) -> Any | None:
    if not ChainConfig.from_env(None, settings).chain_rpc_url.strip():
        return None
    from imagemint.adapters.chain.reader import Web3ChainReader  # web3: only with an RPC URL

    return Web3ChainReader.from_settings(settings)


class UnreadChain:
    """The chain reader when no RPC URL is configured: every read says so (a red verify link)."""

    def _refuse(self, *args: Any) -> Any:
        raise MintError(_NO_RPC, reason="config")

    token_uri = balance_of = minted_to = _refuse


def chain_reader(settings: Settings) -> Any:
    """The verify path's reader in ``inprocess`` mode: the RPC's, or :class:`UnreadChain`."""
    return _reader_or_none(settings) or UnreadChain()
