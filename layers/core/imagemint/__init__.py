"""imagemint: one image-generation API in four dialects, with Arweave storage and onchain moments.

The package spans three Lambda layer folders: ``layers/core`` (this file; the
domain, the dialects, the AWS adapters), ``layers/providers``
(``imagemint.adapters.providers``: OpenAI, fal, the offline provider) and
``layers/chain`` (``imagemint.adapters.arweave``, ``imagemint.adapters.chain``).
In Lambda the layers are unpacked into one ``/opt/python``; elsewhere (the
editable install, the local runtime) ``__path__`` is extended over the folders
on ``sys.path``. Submodules are imported on demand: a function never imports a
provider SDK or a chain library it does not use.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
APP_NAME = "imagemint"
