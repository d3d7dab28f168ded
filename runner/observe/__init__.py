"""What every request did, for the operator: request ids, one access line, Prometheus metrics.

The call path only notes facts on the request's :class:`~runner.observe.records.
CallRecord` (a context variable: the alias, the backend, each attempt, the
tokens); :class:`~runner.observe.middleware.Observe`, the outermost middleware,
opens the record, and when the response is done turns it into the access line
(:mod:`runner.observe.access_log`) and the metrics (:mod:`runner.observe.metrics`).
"""
