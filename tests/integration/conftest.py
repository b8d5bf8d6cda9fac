"""Integration fixtures: real local peers (ArLocal, anvil) and provider protocol stubs, each started
by its fixture on 127.0.0.1 and stopped at the end."""

from arweave_fixtures import *  # noqa: F403
from chain_fixtures import *  # noqa: F403
from stubs.fixtures import *  # noqa: F403
