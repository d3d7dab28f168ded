"""Custom handlers: ``litellm.CustomLLM`` classes in Python files of the handler folder,
loaded safely, called with the integration's credentials, and kept from harming the server."""
