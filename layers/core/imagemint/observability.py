"""Logger and Metrics, created once and imported everywhere.

The service name and namespace come from SAM ``Globals`` environment variables
(``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``). Never log a
whole event, a request body, or a key: log ids, sizes and outcomes. Logs go
to stdout as Lambda expects; the local runtime sends them to stderr
(``IMAGEMINT_LOG_STREAM=stderr``) so that CLI output stays clean.
"""

from __future__ import annotations

import logging
import os
import sys

from aws_lambda_powertools import Logger, Metrics

_stream = sys.stderr if os.environ.get("IMAGEMINT_LOG_STREAM") == "stderr" else sys.stdout
logger = Logger(service="imagemint", logger_handler=logging.StreamHandler(_stream))
metrics = Metrics(namespace="imagemint", service="imagemint")
