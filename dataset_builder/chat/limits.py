"""Client-side rate limits: token buckets for requests and tokens per minute, shared by every request of a run, and
the clock they (and the runner's retry waits) read, which a test replaces to check decisions without waiting."""

import asyncio
import time


class Clock:
    """Real time: `now()` is `time.monotonic()`, `sleep(seconds)` is `asyncio.sleep`. A test passes an object with
    the same two methods (e.g. one whose `sleep` records the wait and moves its `now` on) to see every wait decided."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL_CLOCK = Clock()


class TokenBucket:
    """`per_minute` units refilled continuously, one second's worth of burst; the level may go below zero when a
    request uses more tokens than estimated, which delays the next ones (client-side rpm/tpm limiting)."""

    def __init__(self, per_minute: float, clock: Clock = REAL_CLOCK):
        self.clock = clock
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = clock.now()

    def _refill(self) -> None:
        now = self.clock.now()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def take(self, amount: float) -> None:
        while True:
            self._refill()
            if self.level >= min(amount, self.capacity):
                self.level -= amount
                return
            await self.clock.sleep((min(amount, self.capacity) - self.level) / self.rate)

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)
