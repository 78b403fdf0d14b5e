"""The SDK's `TokenStorage` protocol in memory, for the OAuth client scripts here: each run
starts unregistered and its tokens live in that process only."""

from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


class MemoryStorage:
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info
