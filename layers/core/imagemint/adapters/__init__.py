"""Adapters: everything outside the domain, behind the ports of :mod:`imagemint.domain.ports`.

``aws`` and ``net`` live in the core layer; ``providers`` and ``arweave`` /
``chain`` in their own layers (see :mod:`imagemint`), hence ``extend_path``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
