"""Archive on a real Arweave gateway (ArLocal locally, arweave.net in production).

Flow of :meth:`GatewayArchiveStore.archive`: ask ``/price/<size>`` and
``/tx_anchor``; build a format-2 transaction with :mod:`imagemint.adapters.arweave.tx`
and sign it; check the signature locally; ``POST /tx`` (data inline when it
fits one chunk, else the header alone followed by every ``/chunk``); then poll
``/tx/<id>/status`` until the gateway knows the transaction and check
``/tx/<id>`` against what was signed. A transaction the gateway refuses
(e.g. an unfunded wallet) raises :class:`ArchiveError` at once; one that is
accepted but then not found is posted again, at most ``max_attempts`` times
in all. Every loop is bounded: at most ``max_attempts`` posts,
``max_attempts`` tries per chunk, ``confirm_timeout_s`` of polling per post,
``http_timeout_s`` per request. A record is returned only for a transaction
the gateway has.

``archive()`` is ``commit(prepare())``: ``prepare`` asks for the price and
anchor and signs; ``commit`` posts. Committing a transaction the gateway
already has is safe and adds nothing: Arweave answers a second ``POST /tx``
of a known transaction with 208, ArLocal with 404; either way, when the
gateway reports the transaction as known (status and matching header), the
chunks are uploaded again (idempotent; a crash may have cut the first upload
short) and the same record is returned. A refusal is reported as
``rejected`` only when the gateway does not hold the transaction.

arweave-python-client 1.0.19 is used for what works in it: its ``Wallet``
(JWK parsing, address, the RSA-PSS signature itself), created after its
module-level ``API_URL`` is set to this gateway. Parts replaced, and why:

- ``Transaction``: crashes on non-ASCII tags, mutates tags in to_dict(); we build, sign-check with tx.py.
- ``send()``: never raises, a refused tx vanishes; we POST, check status, re-post a bounded number of times.
- ``get_status()``: reports a dropped tx (404) as PENDING; our status check tells pending from not found.
- ``TransactionUploader``: returns error statuses and can loop forever; our chunk loop has bounded tries.
- ``get_data()``: chunked download is broken, no content type; we GET /<id> and check it against data_root.
- HTTP: ``requests`` without timeouts, UnboundLocalError on a non-200 price; stdlib HTTP with timeouts.

Every request goes through one :data:`Transport` (``urllib_transport`` by
default): tests pass one that records the requests or answers for the gateway.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.message import Message
from typing import Any

from imagemint.adapters.arweave.store import DEFAULT_CONTENT_TYPE, ArchiveError, ArchiveRecord
from imagemint.adapters.arweave.tx import (
    TX_ID_RE,
    ChunkedData,
    Transaction,
    chunk_payloads,
    create_transaction,
    sign_with,
    verify,
    verify_chunk_payload,
)
from imagemint.adapters.arweave.wallet import WalletError, load_wallet, owner, wallet_address
from imagemint.errors import NotFound

#: POST /tx carries the data inline when it fits this many chunks (arweave-js does the same).
MAX_CHUNKS_IN_BODY = 1
_LIB_LOCK = threading.Lock()
_USER_AGENT = "imagemint-arweave/1"


@dataclass(frozen=True)
class GatewayResponse:
    """One answer of the gateway, whatever its status."""

    status: int
    headers: Message | Mapping[str, str]
    body: bytes

    def text(self, limit: int = 200) -> str:
        return " ".join(self.body[:limit].decode("utf-8", errors="replace").split())


#: ``(method, url, body, headers, timeout_s) -> GatewayResponse``; raises OSError (or
#: http.client.HTTPException) when the gateway cannot be reached.
Transport = Callable[[str, str, bytes | None, Mapping[str, str], float], GatewayResponse]


def urllib_transport(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float
) -> GatewayResponse:
    """The default :data:`Transport`: one stdlib request; an HTTP error status is an answer too."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http(s) checked)
            return GatewayResponse(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return GatewayResponse(exc.code, exc.headers, exc.read())


class _Unreachable(Exception):
    pass


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class GatewayArchiveStore:
    def __init__(
        self,
        wallet: dict[str, Any],
        gateway_url: str,
        *,
        confirm_timeout_s: float = 30.0,
        poll_interval_s: float = 1.0,
        max_attempts: int = 3,
        http_timeout_s: float = 30.0,
        public_base_url: str | None = None,
        transport: Transport = urllib_transport,
    ) -> None:
        parsed = urllib.parse.urlparse(gateway_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ArchiveError("The Arweave gateway URL must be http(s)://host[:port]", reason="config")
        if max_attempts < 1 or confirm_timeout_s <= 0 or poll_interval_s <= 0 or http_timeout_s <= 0:
            raise ArchiveError("Arweave gateway limits must be positive", reason="config")
        jwk = load_wallet(wallet)
        self._api = gateway_url.rstrip("/")
        self._public = (public_base_url or self._api).rstrip("/")
        self.confirm_timeout_s = float(confirm_timeout_s)
        self.poll_interval_s = float(poll_interval_s)
        self.max_attempts = int(max_attempts)
        self.http_timeout_s = float(http_timeout_s)
        self._transport = transport
        self._owner = owner(jwk)
        self.address = wallet_address(jwk)
        self._lib_wallet = self._library_wallet(jwk)

    # ------------------------------------------------------------------ library wallet

    def _library_wallet(self, jwk: dict[str, str]) -> Any:
        from arweave import arweave_lib

        with _LIB_LOCK:
            arweave_lib.API_URL = self._api  # read by the library's objects when they are created
            try:
                lib_wallet = arweave_lib.Wallet.from_data(dict(jwk))  # a copy: from_data() mutates it
            except Exception as exc:
                raise WalletError("arweave-python-client cannot load the Arweave wallet") from exc
        if lib_wallet.address != self.address:
            raise WalletError("arweave-python-client derives another address from the Arweave wallet")
        return lib_wallet

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, path: str, body: bytes | None = None) -> GatewayResponse:
        headers = {"User-Agent": _USER_AGENT, "Accept": "*/*"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self._transport(method, self._api + path, body, headers, self.http_timeout_s)
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Unreachable(f"{method} {path}: {reason}") from None

    def _get_with_retries(self, path: str) -> GatewayResponse:
        """GET with up to ``max_attempts`` tries on network errors, 408, 429 and 5xx."""
        last = ""
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(self.poll_interval_s)
            try:
                resp = self._request("GET", path)
            except _Unreachable as exc:
                last = str(exc)
                continue
            if not _retryable(resp.status):
                return resp
            last = f"GET {path}: HTTP {resp.status}"
        raise ArchiveError(f"The Arweave gateway is unreachable ({last})", reason="unreachable")

    # ------------------------------------------------------------------ archive

    def _price(self, size: int) -> str:
        resp = self._get_with_retries(f"/price/{size}")
        price = resp.body.decode("ascii", errors="replace").strip()
        if resp.status != 200 or not price.isdigit():
            raise ArchiveError(f"Bad /price answer: HTTP {resp.status}", reason="bad_response")
        return price

    def _anchor(self) -> str:
        resp = self._get_with_retries("/tx_anchor")
        anchor = resp.body.decode("ascii", errors="replace").strip()
        if resp.status != 200 or (anchor and not all(c.isalnum() or c in "-_" for c in anchor)):
            raise ArchiveError(f"Bad /tx_anchor answer: HTTP {resp.status}", reason="bad_response")
        return anchor

    def prepare(self, data: bytes, tags: list[tuple[str, str]]) -> Transaction:
        return self._signed(bytes(data), tags)

    def _signed(self, data: bytes, tags: list[tuple[str, str]]) -> Transaction:
        for item in tags:
            if isinstance(item, tuple | list) and len(item) == 2 and item[1] == "":
                raise ArchiveError(f"Tag {item[0]!r} has an empty value", reason="invalid_tags")
        try:
            unsigned = create_transaction(
                data, self._owner, tags=tags, reward=self._price(len(data)), last_tx=self._anchor()
            )
        except ValueError as exc:
            raise ArchiveError(f"Cannot archive: {exc}", reason="invalid_tags") from None
        signed = sign_with(unsigned, self._owner, self._lib_wallet.sign)
        if not verify(signed):
            raise ArchiveError("The transaction signature does not verify", reason="integrity")
        return signed

    def archive(self, data: bytes, tags: list[tuple[str, str]]) -> ArchiveRecord:
        return self.commit(self._signed(bytes(data), tags))

    def commit(self, signed: Transaction) -> ArchiveRecord:
        if signed.owner != self._owner or signed.data is None or not verify(signed):
            raise ArchiveError(
                f"Transaction {signed.id or '(unsigned)'} is not a signed item of this store's wallet",
                reason="integrity",
            )
        chunked = signed.chunks()
        inline = len(chunked.chunks) <= MAX_CHUNKS_IN_BODY
        body = signed.to_json(include_data=inline).encode("utf-8")
        last, reason = "", "unreachable"
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                time.sleep(self.poll_interval_s)
            try:
                resp = self._request("POST", "/tx", body)
            except _Unreachable as exc:
                last, reason = str(exc), "unreachable"
                continue
            if resp.status not in (200, 208):
                if not _retryable(resp.status):
                    if self._known_now(signed):
                        # Posted before: by an earlier attempt that showed up late, or by a run of
                        # this step that was killed (ArLocal refuses a known transaction with 404).
                        if not inline:
                            self._upload_chunks(signed, chunked)
                        return ArchiveRecord.from_transaction(signed)
                    raise ArchiveError(
                        f"The gateway refused transaction {signed.id}: HTTP {resp.status} {resp.text()}",
                        reason="rejected",
                        http_status=resp.status,
                        tx_id=signed.id,
                    )
                last, reason = f"POST /tx: HTTP {resp.status}", "unreachable"
                continue
            if not inline:
                self._upload_chunks(signed, chunked)
            if self._wait_until_known(signed):
                return ArchiveRecord.from_transaction(signed)
            last = f"transaction {signed.id} not found within {self.confirm_timeout_s:g} s of posting"
            reason = "dropped"
        raise ArchiveError(
            f"Transaction {signed.id} was not stored after {self.max_attempts} attempts ({last})",
            reason=reason,
            tx_id=signed.id,
            attempts=self.max_attempts,
        )

    def _upload_chunks(self, signed: Transaction, chunked: ChunkedData) -> None:
        for index, payload in enumerate(chunk_payloads(signed, chunked)):
            if not verify_chunk_payload(payload):
                raise ArchiveError(f"Chunk {index} of {signed.id} has a bad proof", reason="integrity")
            problem = self._post_chunk(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
            if problem:
                raise ArchiveError(
                    f"Chunk {index} of {signed.id} was not accepted ({problem})",
                    reason="chunk_failed",
                    tx_id=signed.id,
                )

    def _post_chunk(self, body: bytes) -> str | None:
        """None once the gateway took the chunk; else why not, after at most ``max_attempts`` tries."""
        problem = ""
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(self.poll_interval_s)
            try:
                resp = self._request("POST", "/chunk", body)
            except _Unreachable as exc:
                problem = str(exc)
                continue
            if resp.status == 200:
                return None
            problem = f"HTTP {resp.status} {resp.text()}"
            if not _retryable(resp.status):
                break
        return problem

    def _wait_until_known(self, signed: Transaction) -> bool:
        """Poll until the gateway has ``signed`` (pending or mined); False when the time is up."""
        deadline = time.monotonic() + self.confirm_timeout_s
        while True:  # bounded by the deadline
            if self._known_now(signed):
                return True
            if time.monotonic() + self.poll_interval_s > deadline:
                return False
            time.sleep(self.poll_interval_s)

    def _known_now(self, signed: Transaction) -> bool:
        try:
            state = self._status(signed.id)["state"]
        except _Unreachable:
            return False
        return state in ("pending", "confirmed") and self._header_matches(signed)

    def _header_matches(self, signed: Transaction) -> bool:
        """``/tx/<id>`` holds what we signed (202: pending on arweave.net, header not served yet)."""
        try:
            resp = self._request("GET", f"/tx/{signed.id}")
        except _Unreachable:
            return False
        if resp.status == 202:
            return True
        if resp.status != 200:
            return False
        try:
            remote = Transaction.from_dict(json.loads(resp.body))
        except (ValueError, TypeError):
            return False
        same = (
            remote.id == signed.id
            and remote.data_root == signed.data_root
            and remote.data_size == signed.data_size
            and verify(replace(remote, data=None))  # the signature covers owner, tags, reward, anchor
        )
        if not same:
            raise ArchiveError(f"The gateway serves another header for {signed.id}", reason="integrity")
        return True

    # ------------------------------------------------------------------ status / read

    def _status(self, tx_id: str) -> dict[str, Any]:
        resp = self._request("GET", f"/tx/{tx_id}/status")
        if resp.status == 404:
            return {"state": "not_found"}
        if resp.status == 202:
            return {"state": "pending"}
        if resp.status != 200:
            return {"state": "unknown", "http_status": resp.status}
        try:
            info = json.loads(resp.body)
        except ValueError:
            info = None
        if isinstance(info, dict) and "block_indep_hash" in info:
            return {
                "state": "confirmed",
                "block_height": info.get("block_height"),
                "block_indep_hash": info.get("block_indep_hash"),
                "confirmations": info.get("number_of_confirmations"),
            }
        if resp.text().strip().strip('"').lower() == "pending":
            return {"state": "pending"}
        return {"state": "unknown", "http_status": resp.status}

    def status(self, tx_id: str) -> dict[str, Any]:
        """``{"state": "confirmed"|"pending"|"not_found"|"unknown", ...}``; confirmed adds
        ``block_height``, ``block_indep_hash`` and ``confirmations``. Raises
        :class:`ArchiveError` when the gateway cannot be reached.
        """
        try:
            return self._status(tx_id)
        except _Unreachable as exc:
            raise ArchiveError(f"The Arweave gateway is unreachable ({exc})", reason="unreachable") from None

    def read(self, tx_id: str) -> tuple[bytes, str]:
        if not isinstance(tx_id, str) or not TX_ID_RE.match(tx_id):
            raise NotFound(f"No archived item {tx_id!r}")
        header_resp = self._get_with_retries(f"/tx/{tx_id}")
        header: Transaction | None = None
        if header_resp.status == 200:
            try:
                header = Transaction.from_dict(json.loads(header_resp.body))
            except (ValueError, TypeError):
                raise ArchiveError(f"Unreadable header of {tx_id}", reason="bad_response") from None
            if header.id != tx_id or not verify(replace(header, data=None)):
                raise ArchiveError(f"The gateway's header of {tx_id} does not verify", reason="integrity")
        data_resp = self._get_with_retries(f"/{tx_id}")
        if data_resp.status == 404:
            raise NotFound(f"No archived item {tx_id}")
        if data_resp.status != 200:
            raise ArchiveError(f"Cannot read {tx_id}: HTTP {data_resp.status}", reason="bad_response")
        data = data_resp.body
        if header is not None:
            if not verify(replace(header, data=data)):
                raise ArchiveError(f"The data of {tx_id} does not match its data_root", reason="integrity")
            content_type = header.tag("Content-Type")
        else:  # e.g. an ANS-104 data item or a pending tx on arweave.net: the gateway's word
            content_type = data_resp.headers.get("Content-Type")
        return data, content_type or DEFAULT_CONTENT_TYPE

    def gateway_url(self, tx_id: str) -> str:
        return f"{self._public}/{tx_id}"
