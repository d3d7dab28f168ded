"""The call path: a caller's request resolved to a deployment, held to its limits, sent
through the deployment's backend, and answered as JSON or server-sent events.

:mod:`runner.calls.types` holds the shapes every part shares (it imports
nothing else from the runner); :mod:`runner.calls.backends` holds the ways of
reaching an upstream, each behind the same small interface.
"""
