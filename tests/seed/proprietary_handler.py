# File: proprietary_handler.py

from litellm import CustomLLM
from litellm.types.utils import ModelResponse
import httpx


class ProprietaryLLMHandler(CustomLLM):
    """Custom handler for proprietary LLM API."""

    def __init__(self, timeout: int = 30, retry_count: int = 1):
        self.timeout = timeout
        self.retry_count = retry_count

    async def acompletion(
        self,
        model: str,
        messages: list,
        api_base: str,
        custom_llm_provider: str,
        **kwargs
    ) -> ModelResponse:
        """Handle async completion requests to the proprietary API."""

        # Transform messages to provider's format
        payload = self._transform_request(messages, **kwargs)

        # Make the async API call
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{api_base}/generate",
                json=payload,
                timeout=self.timeout
            )
            response.raise_for_status()

        # Transform response to LiteLLM format
        return self._transform_response(response.json(), model)

    def _transform_request(self, messages: list, **kwargs) -> dict:
        """Transform LiteLLM messages to provider format."""
        return {
            "prompt": messages,
            "temperature": kwargs.get("temperature", 0.7),
            "max_tokens": kwargs.get("max_tokens", 1024)
        }

    def _transform_response(self, data: dict, model: str) -> ModelResponse:
        """Transform provider response to LiteLLM format."""
        return ModelResponse(
            id=data.get("id", "response-id"),
            choices=[{
                "message": {
                    "role": "assistant",
                    "content": data["output"]
                },
                "finish_reason": "stop"
            }],
            model=model,
            usage={
                "prompt_tokens": data.get("input_tokens", 0),
                "completion_tokens": data.get("output_tokens", 0),
                "total_tokens": data.get("total_tokens", 0)
            }
        )
