from simple_gateway.providers import Router, build_provider, register_builtin_types
from simple_gateway.settings import ProviderConfig


def router(*configs: ProviderConfig) -> Router:
    register_builtin_types()
    providers = [build_provider(c) for c in configs]
    return Router(providers, providers[0])


OPENAI = ProviderConfig("openai", "openai", "https://api.openai.com")
ANTHROPIC = ProviderConfig("anthropic", "anthropic", "https://api.anthropic.com")
AZURE = ProviderConfig(
    "azure", "compatible", "https://x.azure.com/openai", {"prefix": "/azure/openai"}
)
AZURE_SHORT = ProviderConfig("az", "compatible", "https://short", {"prefix": "/azure"})


def test_bare_v1_goes_to_the_default_provider_unchanged():
    route = router(OPENAI, ANTHROPIC).route("/v1/chat/completions", "a=1")
    assert route.provider.name == "openai"
    assert route.upstream_path == "/v1/chat/completions?a=1"


def test_provider_prefix_is_removed():
    route = router(OPENAI, ANTHROPIC).route("/anthropic/v1/messages")
    assert (route.provider.name, route.upstream_path) == ("anthropic", "/v1/messages")
    assert (
        route.provider.upstream_url(route.upstream_path) == "https://api.anthropic.com/v1/messages"
    )


def test_longest_prefix_wins_and_partial_segments_do_not_match():
    table = router(OPENAI, AZURE_SHORT, AZURE)
    assert table.route("/azure/openai/deployments/x").provider.name == "azure"
    assert table.route("/azure/other").provider.name == "az"
    assert table.route("/openaix/v1/models") is None
    assert table.route("/v1x") is None
