"""Ports: the small interfaces behind which everything outside the domain sits.

Adapters implement them (``imagemint.adapters.*``, ``imagemint.adapters.providers.*``);
unit tests use the in-memory implementations in ``imagemint.testing.memory``.
Concrete adapters take their client or session as a constructor argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from imagemint.domain.models import Account, ApiKeyRecord, Job, LedgerEntry

if TYPE_CHECKING:
    from imagemint.settings import Settings


@dataclass(frozen=True)
class InputImage:
    """A reference / edit image after it was fetched and checked."""

    data: bytes
    media_type: str
    name: str = "image"


@dataclass(frozen=True)
class ProviderCall:
    """One call to one provider, after the model registry resolved the request."""

    prompt: str
    provider_model: str
    n: int
    width: int
    height: int
    output_format: str = "png"
    size: str | None = None  # the provider's own size string where it has one
    aspect_ratio: str | None = None
    resolution: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_compression: int | None = None
    moderation: str | None = None
    seed: int | None = None
    references: tuple[InputImage, ...] = ()
    mask: InputImage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderImage:
    data: bytes
    media_type: str
    width: int
    height: int
    revised_prompt: str | None = None


@dataclass
class ProviderResult:
    images: list[ProviderImage]
    model: str  # the provider model that ran
    prompt_tokens: int = 0  # all input tokens (text and images)
    completion_tokens: int = 0
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    input_image_tokens: int = 0  # the image part of prompt_tokens (priced apart from text)


class ImageProvider(Protocol):
    name: str

    def generate(self, call: ProviderCall) -> ProviderResult:
        """Generate ``call.n`` images (``n`` never exceeds the model's per-call limit).

        Raises domain errors (``ModerationBlocked``, ``ProviderError``,
        ``ProviderTimeout``, ``RateLimited``, ``InvalidRequest``) only.
        """
        ...


class ImageStore(Protocol):
    def put(self, key: str, data: bytes, media_type: str, metadata: dict[str, str] | None = None) -> None: ...

    def get(self, key: str) -> bytes: ...

    def head(self, key: str) -> dict[str, Any] | None:
        """Object size, content type and user metadata, or None when absent."""
        ...

    def url(self, key: str, expires_in: int) -> str:
        """A URL a client can fetch the object from for ``expires_in`` seconds."""
        ...


class JobStore(Protocol):
    def create(self, job: Job) -> None: ...

    def get(self, job_id: str) -> Job | None: ...

    def status(self, job_id: str) -> str | None:
        """The job's status alone, read consistently (None: no such job): what a waiter polls, without
        reading and parsing the whole record each time."""
        ...

    def update(self, job_id: str, *, expect_status: str | None = None, **fields: Any) -> Job:
        """Set fields and append a transition when ``status`` changes.

        ``expect_status``: only if the job is in that status now, else :class:`~imagemint.errors.Conflict`.
        """
        ...

    def stale_open_jobs(self, updated_before: float, limit: int) -> list[Job]:
        """Jobs still ACCEPTED or RUNNING, unchanged since ``updated_before`` (for the sweeper)."""
        ...


class AccountStore(Protocol):
    def create_account(self, account: Account) -> None: ...

    def get_account(self, account_id: str) -> Account | None: ...

    def put_key(self, record: ApiKeyRecord) -> None: ...

    def get_key(self, key_hash: str) -> ApiKeyRecord | None: ...

    # Keys (imagemint.domain.auth).
    def touch_key(self, key_hash: str, at: float, min_interval_s: float) -> bool:
        """Set ``last_used_at`` unless it was set less than ``min_interval_s`` ago; True when written."""
        ...

    def revoke_key(self, key_hash: str, at: float) -> ApiKeyRecord | None:
        """Mark a key revoked; the updated record, or None when there is no such key."""
        ...

    def list_account_items(self, account_id: str) -> tuple[list[ApiKeyRecord], list[LedgerEntry]]:
        """The keys and ledger lines of an account (admin use)."""
        ...

    # Credits and the usage ledger (imagemint.domain.credits).
    def charge_job(self, entry: LedgerEntry) -> None:
        """In one atomic write: take ``entry.credits`` if the balance allows and create the ledger line.

        InsufficientCredits (required / available) when it does not; NotFound for no account;
        nothing happens when the line exists already (the job was charged).
        """
        ...

    def refund_job(self, account_id: str, entry_id: str, amount: int, *, reason: str) -> bool:
        """In one atomic write: give ``amount`` back and mark the ledger line refunded, unless it was.

        True when credits were given back now, False when the line was refunded before (or is absent).
        """
        ...

    def get_ledger(self, account_id: str, entry_id: str) -> LedgerEntry | None: ...

    def grant(self, entry: LedgerEntry) -> int:
        """Add ``entry.credits`` (may be negative, never below zero) with its ledger line; the new balance."""
        ...

    # Collections kept on the account (chain_mode=inprocess: one In Process collection per account).
    def get_collection(self, account_id: str, key: str) -> str | None:
        """The collection address stored under ``key`` on the account, or None."""
        ...

    def set_collection(self, account_id: str, key: str, address: str) -> str:
        """Store ``address`` under ``key`` unless one is stored already; the stored one (first wins)."""
        ...


class Pipeline(Protocol):
    """Runs the generation state machine for one job."""

    def run(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        """Start a synchronous request's execution (the EXPRESS workflow) and return at once.

        The caller waits on the job record, not on this call (:func:`imagemint.domain.service.submit`).
        """
        ...

    def start(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        """Start an async job or a resume (the STANDARD workflow) and return at once (its id, if any)."""
        ...


# ---------------------------------------------------------------- rate limits

#: How long a concurrency lease lives: longer than any generation (the state machine's task
#: timeouts), so a lease this old belongs to a function that died.
LEASE_S = 300.0


class LimitStore(Protocol):
    """Counters and leases of the rate limits (:mod:`imagemint.api.ratelimit`)."""

    def hit(self, counter: str, limit: int, expires_at: int) -> int | None:
        """Count one request in ``counter`` unless it holds ``limit``; the new count, or None when full."""
        ...

    def acquire(self, slot: str, lease: str, limit: int, at: float) -> bool:
        """Add ``lease`` (expiring at ``at + LEASE_S``) to ``slot`` unless it holds ``limit`` live leases."""
        ...

    def release(self, slot: str, lease: str) -> None: ...


# ---------------------------------------------------------------- the bundle


@dataclass
class Deps:
    """The ports of one process, as the domain and the dialects take them.

    :mod:`imagemint.wiring` builds it (``get_deps()``); tests and the local runtime
    pass their own (``wiring.set_deps``).
    """

    settings: Settings
    jobs: JobStore
    accounts: AccountStore
    images: ImageStore
    pipeline: Pipeline | None = None
    # Rate-limit counters (imagemint.api.ratelimit) and the Idempotency-Key persistence layer
    # (imagemint.api.idempotency); None -> that feature is off (unit tests that do not set them).
    limits: LimitStore | None = None
    idempotency: Any | None = None
    # Moments waiting per creator contract (imagemint.domain.batching); None -> each job mints alone.
    mint_queue: MintQueue | None = None


# ---------------------------------------------------------------- minting


class NonceAllocator(Protocol):
    """Hands out the transaction nonces of one signer on one chain, atomically across processes.

    In AWS a DynamoDB counter per signer and chain (:mod:`imagemint.adapters.aws.nonces`); the
    chain adapter fills any nonce whose transaction was never sent (:mod:`imagemint.adapters.chain.txengine`).
    """

    def allocate(self, signer: str, chain_id: int, floor: int) -> int:
        """A nonce never handed out before for (``signer``, ``chain_id``), at least ``floor``.

        ``floor`` is the node's pending nonce: the counter starts there, and jumps up to it when the
        key was used elsewhere.
        """
        ...


class MintQueue(Protocol):
    """Moments waiting to be minted on one creator contract, who sends them (a lease), and which
    moments a sender has taken.

    The mint step's coordinator (:mod:`imagemint.domain.batching`) puts each job's moment here; the
    step holding the contract's lease takes up to ten and mints them in one transaction. A taken
    moment cannot be queued again until its sender is done with it (or its lease ran out and the
    job settled what the sender journalled): that is what keeps a re-run from minting it twice.
    In AWS one DynamoDB item per contract (:mod:`imagemint.adapters.aws.mintqueue`).
    """

    def enqueue(self, queue: str, job_id: str, entry: dict[str, Any]) -> bool:
        """Put ``job_id``'s moment (``uri``, ``creator``, ``at``) in ``queue``; False when it is taken."""
        ...

    def state(self, queue: str) -> tuple[dict[str, dict[str, Any]], dict[str, str], str | None, float]:
        """What waits (job id -> entry), what is taken (job id -> sender), the lease holder and its end."""
        ...

    def lead(self, queue: str, job_id: str, until: float, now: float) -> bool:
        """Take (or extend) the lease of ``queue`` for ``job_id`` unless another holder's lease is live."""
        ...

    def take(self, queue: str, job_id: str, job_ids: list[str]) -> bool:
        """Move ``job_ids`` from waiting to taken by ``job_id``, only while it holds the lease."""
        ...

    def done(self, queue: str, job_id: str, job_ids: list[str]) -> None:
        """Forget ``job_ids`` taken by ``job_id`` (minted and recorded)."""
        ...

    def untake(self, queue: str, job_id: str, holder: str, entry: dict[str, Any]) -> bool:
        """Put a moment ``holder`` took back in the waiting ones (it was never sent); False if it moved."""
        ...

    def release(self, queue: str, job_id: str) -> None:
        """Give the lease up (when ``job_id`` holds it)."""
        ...


#: Chains a minter may sign for besides a configured local development chain.
BASE_MAINNET = 8453
BASE_SEPOLIA = 84532
PUBLIC_CHAIN_IDS: frozenset[int] = frozenset({BASE_MAINNET, BASE_SEPOLIA})


class Moment(BaseModel):
    """One minted moment: an ERC-1155 token on the creator's Zora contract.

    ``tokenId`` is a decimal string (token ids are uint256; JSON numbers lose
    precision above 2**53). ``hash`` is the transaction that minted the
    token to the creator (the batched multicall, or the ``adminMint`` tx when
    the token was set up in a separate transaction).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)  # only the mint path builds it

    contractAddress: str
    tokenId: str
    hash: str
    chainId: int


@runtime_checkable
class MomentMinter(Protocol):
    def ensure_contract(self, creator: str, contract_address: str | None, name: str) -> str:
        """The creator's 1155 contract address.

        Returns ``contract_address`` (checksummed, after checking it has code)
        when one is given; otherwise creates the creator's contract through
        the Zora factory, once: calling it again for the same creator and
        name returns the same contract.
        """
        ...

    def mint(
        self,
        metadata_uri: str,
        creator: str,
        contract_address: str,
        *,
        journal: Callable[[dict[str, Any]], None] | None = None,
    ) -> Moment:
        """Set up a new token with ``metadata_uri`` and mint one to ``creator``.

        ``journal`` gets a JSON-ready pending-mint record after each
        transaction is signed and before it is sent; keep the last one, and
        pass it to :meth:`resume` when the mint is run again after a crash.
        """
        ...

    def resume(
        self, pending: dict[str, Any], *, journal: Callable[[dict[str, Any]], None] | None = None
    ) -> Moment | None:
        """Finish the mint a killed run left in ``pending`` (the last journal record).

        The moment of the journalled transaction once it is mined (it is sent
        again, same nonce, when the node does not have it), or None when it was
        never mined and never can be (its nonce was taken, or it reverted):
        nothing was minted, mint afresh. Raises :class:`MintError` when it
        cannot be settled now (keep the record and try again later).
        """
        ...


class HostedMomentMinter(Protocol):
    """Creates moments through a hosted service's HTTP API instead of our own signer
    (``chain_mode=inprocess``: :mod:`imagemint.adapters.chain.inprocess`).

    The service creates the creator's collection with its first moment (``collection`` None: a new
    one named ``collection_name`` with ``collection_uri``), later moments go to that collection.
    :mod:`imagemint.domain.hosted_mint` journals each request on the job before it is sent.
    """

    hosted: bool  # True: provenance.mint hands the job to imagemint.domain.hosted_mint
    chain_id: int
    budget_s: float  # one mint step run's whole budget for calls to the service
    default_account: str

    def request(
        self,
        metadata_uri: str,
        account: str,
        collection: str | None,
        collection_name: str,
        collection_uri: str,
    ) -> dict[str, Any]:
        """The JSON body of the create request (checked: a bad address is MintError ``bad_address``)."""
        ...

    def create(self, body: dict[str, Any], *, before_send: Callable[[], None], deadline: float) -> Moment:
        """Simulate, then call ``before_send`` and create. MintError on failure; its details say
        ``sent`` (False: the create request surely created nothing)."""
        ...

    def find(
        self, account: str, collection: str | None, metadata_uri: str, *, deadline: float
    ) -> Moment | None:
        """The moment whose metadata is ``metadata_uri`` as the service lists it, or None."""
        ...

    def check_onchain(self, moment: Moment, metadata_uri: str) -> dict[str, Any]:
        """Whether ``uri(tokenId)`` on chain is ``metadata_uri`` (``verified``), or why it was not read."""
        ...


# ---------------------------------------------------------------- content credentials (C2PA)

#: IPTC digital source types (http://cv.iptc.org/newscodes/digitalsourcetype/...).
IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = IPTC_SOURCE_TYPES + "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = IPTC_SOURCE_TYPES + "compositeWithTrainedAlgorithmicMedia"
#: C2PA actions: ``created`` for what a model made for us; ``opened`` for a file someone else made
#: (an upload dropped into ingest/): we sign that we took it in, with the file as our parent
#: ingredient, and claim nothing about how it was made.
CREATED = "c2pa.created"
OPENED = "c2pa.opened"


@dataclass(frozen=True)
class ContentClaim:
    """What a Content Credentials manifest says about one image we made (or took in, ``OPENED``)."""

    job_id: str
    model: str  # the registry model that ran
    provider: str  # who ran it (openai, fal, local, upload)
    digital_source_type: str | None = TRAINED_ALGORITHMIC_MEDIA  # None with OPENED: not ours to say
    title: str = "image"
    index: int = 0
    action: str = CREATED


@dataclass(frozen=True)
class SignedContent:
    """An image with our manifest: embedded (``data`` changed), or a ``sidecar`` manifest store."""

    data: bytes
    media_type: str
    manifest_label: str  # the claim's id (urn:c2pa:...)
    manifest_sha256: str  # sha256 of the manifest store bytes
    sidecar: bytes | None = None  # formats that cannot embed one: the .c2pa manifest store
    parent_label: str | None = None  # the provider's own manifest, kept as the parent ingredient


@dataclass(frozen=True)
class CredentialReport:
    """What a reader found in an image's Content Credentials."""

    state: str  # "Trusted", "Valid", "Invalid", or "absent"
    manifest_label: str | None = None
    digital_source_type: str | None = None
    software_agent: str | None = None
    claim_generator: str | None = None
    job_id: str | None = None
    issuer: str | None = None
    parent_label: str | None = None
    failures: tuple[str, ...] = ()
    action: str | None = None  # CREATED or OPENED: the manifest's own action

    @property
    def valid(self) -> bool:
        return self.state in ("Valid", "Trusted")

    @property
    def trusted(self) -> bool:
        return self.state == "Trusted"


class ContentSigner(Protocol):
    """Signs a C2PA manifest into an image (``imagemint.adapters.c2pa``; the sign step only)."""

    def sign(self, data: bytes, media_type: str, claim: ContentClaim) -> SignedContent:
        """Our manifest over ``data``; a manifest ``data`` already carries becomes its parent ingredient."""
        ...


class CredentialReader(Protocol):
    """Reads and validates Content Credentials against the configured trust anchors."""

    def read(self, data: bytes, media_type: str, sidecar: bytes | None = None) -> CredentialReport: ...


class ChainReader(Protocol):
    """Reads a minted moment back from the chain (the verify path)."""

    def token_uri(self, contract: str, token_id: int) -> str: ...

    def balance_of(self, contract: str, owner: str, token_id: int) -> int: ...

    def minted_to(self, tx_hash: str, token_id: int) -> str | None:
        """Who the mint transaction transferred ``token_id`` to (its TransferSingle), or None."""
        ...
