"""The runner's benchmark: added latency, throughput and memory against LiteLLM's proxy.

Run ``python -m bench`` (``--smoke`` for a seconds-long check). See the README.
"""
