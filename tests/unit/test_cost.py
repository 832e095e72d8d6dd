from importlib import resources

import pytest
import yaml

from simple_gateway.records.cost import ModelPrice, PriceTable
from simple_gateway.records.usage import Usage

REQUIRED = [
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "claude-opus-4-1",
    "claude-opus-4",
    "claude-sonnet-4-5",
    "claude-sonnet-4",
    "claude-3-7-sonnet",
    "claude-haiku-4-5",
    "claude-3-5-haiku",
]


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_shipped_table_is_package_data_and_covers_the_required_models(table: PriceTable) -> None:
    shipped = yaml.safe_load(
        resources.files("simple_gateway.records").joinpath("prices.yaml").read_text()
    )["models"]
    for model in REQUIRED:
        assert model in shipped
        assert table.resolve(model) == model
        price = table.price_of(model)
        assert price is not None and price.input > 0


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        ("openrouter/anthropic/claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
    ],
)
def test_model_matching(table: PriceTable, model: str, entry: str) -> None:
    assert table.resolve(model) == entry


@pytest.mark.parametrize(
    "model",
    ["llama3.2", "gpt-4o-realtime-preview", "gpt-4omni", "o3x", "gpt-4o-", "", None],
)
def test_unknown_models_and_worded_variants_are_not_priced(
    table: PriceTable, model: str | None
) -> None:
    assert table.resolve(model) is None
    assert table.cost(model, Usage(input_tokens=10, output_tokens=10, source="t")) == (
        None,
        "unpriced",
    )


def test_cost_with_cache_reads(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cached_tokens=400_000, source="t")
    # gpt-4o: input 2.50, cached 1.25, output 10.00 per 1M
    expected = 0.6 * 2.50 + 0.4 * 1.25 + 0.5 * 10.00
    assert table.cost("gpt-4o-2024-08-06", usage) == (pytest.approx(expected), "priced")


def test_cost_is_rounded_to_8_decimals() -> None:
    table = PriceTable({"m": ModelPrice(input=0.123456789, output=0)})
    cost, status = table.cost("m", Usage(input_tokens=1, output_tokens=0, source="t"))
    assert status == "priced"
    assert cost == 1.2e-07  # 1.23456789e-07 before rounding
    cost, _ = table.cost("m", Usage(input_tokens=1000, source="t"))
    assert cost == round(1000 * 0.123456789 / 1e6, 8)


def test_cached_price_falls_back_to_input_and_cached_never_exceeds_input() -> None:
    table = PriceTable({"m": ModelPrice(input=2.0, output=4.0)})
    usage = Usage(input_tokens=100, output_tokens=0, cached_tokens=500, source="t")
    assert table.cost("m", usage) == (pytest.approx(100 * 2.0 / 1e6), "priced")


def test_no_usage(table: PriceTable) -> None:
    assert table.cost("gpt-4o", None) == (None, "no_usage")
    assert table.cost("gpt-4o", Usage(cached_tokens=3, source="t")) == (None, "no_usage")


def test_zero_tokens_cost_zero_when_priced(table: PriceTable) -> None:
    assert table.cost("gpt-4o", Usage(input_tokens=0, output_tokens=0, source="t")) == (
        0.0,
        "priced",
    )


def test_overrides_change_add_and_keep_other_fields() -> None:
    table = PriceTable.load(
        {"gpt-4o": {"output": 1.0}, "My-Local-Model": {"input": 0.5, "output": 0.5}}
    )
    assert table.price_of("gpt-4o") == ModelPrice(input=2.50, output=1.0, cached_input=1.25)
    assert table.resolve("my-local-model-2025-01-01") == "my-local-model"
    usage = Usage(input_tokens=2_000_000, output_tokens=0, source="t")
    assert table.cost("my-local-model", usage) == (1.0, "priced")
    assert PriceTable.load().price_of("gpt-4o") == ModelPrice(2.50, 10.0, 1.25)


@pytest.mark.parametrize(
    "overrides",
    [
        {"new": {"input": 1.0}},
        {"gpt-4o": {"inptu": 1.0}},
        {"gpt-4o": {"input": -1}},
        {"gpt-4o": {"input": "cheap"}},
        {"gpt-4o": {"input": True}},
        {"gpt-4o": 3.0},
    ],
)
def test_bad_overrides_are_refused_with_the_model_named(overrides: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(overrides))):
        PriceTable.load(overrides)
