"""imagemint: one image-generation API in four dialects, with Arweave storage and onchain moments.

This package is the shared Lambda layer. Submodules are imported on demand:
an API function must never import a provider SDK (openai, fal_client) or a
chain library (web3, arweave) it does not use.
"""

__version__ = "0.1.0"
APP_NAME = "imagemint"
