"""Estimated cost of a generation run from token usage: a price table (package data) the user can override, and the
estimate of a run not yet sent (`--dry-run`)."""

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

BATCH_DISCOUNT = 0.5  # the Batch API bills half the synchronous price


def load_prices(override: str | Path | None = None) -> dict[str, dict[str, float]]:
    """USD per 1M input/output tokens by model name; entries of `override` (a JSON file) replace the defaults."""
    text = resources.files("dataset_builder.generation").joinpath("prices.json").read_text("utf-8")
    prices = {model: price for model, price in json.loads(text).items() if not model.startswith("_")}
    if override:
        try:
            prices.update(json.loads(Path(override).read_text("utf-8")))
        except (OSError, json.JSONDecodeError) as error:
            raise EmoVITInputError(f"--prices {override}: not a readable JSON price table ({error}).") from None
    return prices


def price_for(model: str, prices: dict) -> dict | None:
    """The entry of the longest model name that `model` starts with (dated snapshots share their family's price)."""
    matches = [name for name in prices if model.startswith(name)]
    return prices[max(matches, key=len)] if matches else None


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int, prices: dict, batch: bool = False):
    """USD for the tokens, or None when the model has no price (local servers, the rules backend)."""
    price = price_for(model, prices)
    if price is None:
        return None
    cost = (prompt_tokens * price["input"] + completion_tokens * price["output"]) / 1_000_000
    return cost * (BATCH_DISCOUNT if batch else 1.0)


@dataclass
class CostEstimate:
    """What a run would send, before retries and rejected replies: `requests` (items the cache does not answer),
    `cached` items, estimated prompt tokens, completion tokens at most (None: no max_tokens, so unbounded) and the
    cost of those tokens (USD; None when the model has no price)."""

    model: str
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int | None = 0
    cost: float | None = None

    def summary(self) -> str:
        completion = ("no bound on completion tokens (no --max-tokens)" if self.completion_tokens is None
                      else f"at most {self.completion_tokens} completion tokens")
        if self.cost is None:
            cost = f"no price for {self.model} (give --prices)"
        else:
            bound = "of the prompts only" if self.completion_tokens is None else "at most"
            cost = f"estimated cost {bound} ${self.cost:.4f}"
        return (f"dry run, nothing sent: {self.requests} requests to {self.model} ({self.cached} items from the "
                f"cache), about {self.prompt_tokens} prompt tokens and {completion}; {cost}, retries not included")
