"""Client-side rate limits: token buckets for requests and tokens per minute, shared by every request of a run."""

import asyncio
import time


class TokenBucket:
    """`per_minute` units refilled continuously, one second's worth of burst; the level may go below zero when a
    request uses more tokens than estimated, which delays the next ones (client-side rpm/tpm limiting)."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def take(self, amount: float) -> None:
        while True:
            self._refill()
            if self.level >= min(amount, self.capacity):
                self.level -= amount
                return
            await asyncio.sleep((min(amount, self.capacity) - self.level) / self.rate)

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)
