"""The local runtime: ``template.yaml`` served on this machine without Docker.

It stands in for ``sam local start-api``: moto (in-process server on
127.0.0.1) holds the template's tables, bucket, functions and state machine;
moto's Step Functions interpreter executes the state machine and its Lambda
tasks run the real handler code in-process; an HTTP server turns requests
into API Gateway HTTP API (v2) events for the function the template routes
them to. Nothing here is deployed code: the ``local`` package is only imported
by the CLI and tests.
"""
