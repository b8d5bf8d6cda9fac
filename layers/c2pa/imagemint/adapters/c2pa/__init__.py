"""Content Credentials (C2PA) with c2pa-python: :mod:`.signer` signs manifests into images, reads them back.

This package is the c2pa layer (c2pa-python and its native library); the sign step
and the verify function attach it. :func:`imagemint.wiring.content_signer` and
:func:`imagemint.wiring.credential_reader` build the adapters.
"""
