"""Azure OpenAI: deployment paths, the `api-key` header and a required `api-version`.

Clients call `/azure/openai/deployments/<deployment>/chat/completions?api-version=...`
exactly as they would call their resource. When a client gives no `api-version`, the
provider's `api_version` option is added (Azure refuses requests without one).
"""

from __future__ import annotations

from typing import ClassVar

from simple_gateway.providers.base import UpstreamRequest
from simple_gateway.providers.http import HTTPProvider, with_query_default
from simple_gateway.proxy.transport import Network
from simple_gateway.settings import ProviderConfig


class AzureProvider(HTTPProvider):
    """An Azure OpenAI resource (`https://<resource>.openai.azure.com`); no default base URL."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"api_version"})
    key_headers = ("api-key", "authorization")
    auth_header = "api-key"
    auth_scheme = ""

    def __init__(self, config: ProviderConfig, network: Network) -> None:
        super().__init__(config, network)
        version = config.options.get("api_version")
        if version is not None and not isinstance(version, str):
            raise ValueError("api_version: expected a string such as '2024-10-21'")
        self.api_version = version or None

    def prepare(self, request: UpstreamRequest) -> None:
        super().prepare(request)
        if self.api_version:
            request.path = with_query_default(request.path, "api-version", self.api_version)
