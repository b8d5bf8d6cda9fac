"""AWS adapters, one module per adapter; each takes its boto3 client in the constructor.

* :mod:`.client`: ``client()``, the cached boto3 client factory (boto3 is imported on
  first use, never at import time of a function), and the DynamoDB value conversion.
* :mod:`.images`: :class:`~.images.S3ImageStore` (``ImageStore``).
* :mod:`.jobs`: :class:`~.jobs.DynamoJobStore` (``JobStore``).
* :mod:`.accounts`: :class:`~.accounts.DynamoAccountStore` (``AccountStore``: accounts,
  keys, the credit ledger).
* :mod:`.pipeline`: :class:`~.pipeline.StepFunctionsPipeline` (``Pipeline``).
* :mod:`.limits`: :class:`~.limits.DynamoLimitStore` (``LimitStore``: rate-limit counters
  and concurrency leases).

:mod:`imagemint.wiring` builds them; nothing else does.
"""
