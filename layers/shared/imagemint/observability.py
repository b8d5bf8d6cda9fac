"""Logger and Metrics, created once and imported everywhere.

The service name and namespace come from SAM ``Globals`` environment variables
(``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``). Never log a
whole event, a request body, or a key: log ids, sizes and outcomes.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="imagemint")
metrics = Metrics(namespace="imagemint", service="imagemint")
