"""`batch` backend: the OpenAI Batch API (half the price for large runs) with the same validation and cache.

Writes request files (`<out>.batch/requests-<n>.jsonl`, at most 50,000 requests each as the API allows), uploads
them (`files.create(purpose="batch")`), creates batches for `/v1/chat/completions`, polls them, and ingests the
output lines through the same parser, validation and cache as the `openai` backend. Rejected replies, and
requests the Batch API did not run in time (`batch_expired`), go into a new batch, up to `max_rejections` rounds.
Every submitted batch is logged in `<out>.batch/batches.jsonl` (with its round) before it is polled: a run killed
while waiting picks its batches up again, in the round they belong to, instead of paying for them twice.
"""

import asyncio
import json
from pathlib import Path

from ..chat import ChatRunStats, ClientSettings, RejectedOutput, ResponseCache, make_client
from ..chat.runner import connection_failure
from ..chat.settings import oversized_reply, reply_byte_limit
from ..jsonl import append_line, iter_objects, read_objects, read_resumable
from .backends import OpenAIBackend
from .items import GenerationItem
from .writer import OutputWriter

TERMINAL = ("completed", "failed", "expired", "cancelled")
MAX_REQUESTS_PER_BATCH = 50_000  # OpenAI Batch API limit per input file


class BatchBackend(OpenAIBackend):
    name = "batch"
    batch = True

    def __init__(self, settings: ClientSettings, work_dir: str | Path, cache: ResponseCache | None = None,
                 poll_interval: float = 30.0, max_requests_per_batch: int = MAX_REQUESTS_PER_BATCH,
                 prompts: dict | None = None, content_checks: bool = True):
        super().__init__(settings, cache, prompts, content_checks)
        self.work_dir = Path(work_dir)
        self.poll_interval, self.max_requests_per_batch = poll_interval, max_requests_per_batch
        self.state = self.work_dir / "batches.jsonl"

    def run(self, items: list[GenerationItem], writer: OutputWriter) -> ChatRunStats:
        import openai

        try:
            return asyncio.run(self._run(items, writer))
        except openai.APIConnectionError as error:  # timeouts included: nothing submitted is lost (batch log)
            unreachable = connection_failure(error, self.settings)
            if unreachable is None:
                raise
            raise unreachable from None

    async def _run(self, items, writer) -> ChatRunStats:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        stats, client = ChatRunStats(), make_client(self.settings)
        pending = {item.custom_id: item for item in items if not self._write_cached(item, writer, stats)}
        last = self.settings.max_rejections
        try:
            resumed_round = -1  # a killed run's batches finish their round; the rounds go on from there
            for batch_id, round_number in self._unfinished_batches(writer):
                await self._ingest(client, batch_id, pending, writer, stats, last_round=round_number >= last)
                resumed_round = max(resumed_round, round_number)
            for round_number in range(resumed_round + 1, last + 1):
                waiting = list(pending.values())
                for start in range(0, len(waiting), self.max_requests_per_batch):
                    batch_id = await self._submit(client, waiting[start:start + self.max_requests_per_batch], stats,
                                                  round_number)
                    await self._ingest(client, batch_id, pending, writer, stats, last_round=round_number == last)
        finally:
            await client.close()
        return stats

    def _write_cached(self, item: GenerationItem, writer: OutputWriter, stats: ChatRunStats) -> bool:
        cached = self.cached_pairs(item)
        if cached is None:
            return False
        pairs, usage = cached
        stats.cache_hits += 1
        writer.done(item, pairs, self.model, self.prompt(item.task).version, usage, cached=True)
        return True

    def _log(self, row: dict) -> None:
        with open(self.state, "a", encoding="utf-8") as handle:
            append_line(handle, row)

    def _unfinished_batches(self, writer: OutputWriter) -> list[tuple[str, int]]:
        """(batch id, round) of each logged batch not yet ingested; garbled log lines are dropped and noted."""
        logged = read_resumable(self.state)
        for _ in range(logged.garbled_lines):
            writer.report.note("garbled line in the batch log dropped", str(self.state))
        rows = [row for row in logged.rows if isinstance(row.get("batch_id"), str)]
        ingested = {row["batch_id"] for row in rows if row.get("ingested")}
        return [(row["batch_id"], row["round"] if isinstance(row.get("round"), int) else 0) for row in rows
                if "request_file" in row and row["batch_id"] not in ingested]

    def _request_line(self, item: GenerationItem) -> dict:
        request = self.request(item)
        body = {"model": self.model, "messages": request.messages}
        if request.response_format:  # none for the release's prompts, which are answered in text
            body["response_format"] = request.response_format
        if self.settings.max_tokens:
            body["max_tokens"] = self.settings.max_tokens
        if self.settings.temperature is not None:
            body["temperature"] = self.settings.temperature
        return {"custom_id": item.custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}

    async def _submit(self, client, items: list[GenerationItem], stats: ChatRunStats, round_number: int) -> str:
        number = len(list(self.work_dir.glob("requests-*.jsonl")))
        path = self.work_dir / f"requests-{number:04d}.jsonl"
        path.write_text("".join(json.dumps(self._request_line(item)) + "\n" for item in items), "utf-8")
        with open(path, "rb") as handle:
            uploaded = await client.files.create(file=handle, purpose="batch")
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        stats.requests += len(items)
        self._log({"batch_id": batch.id, "request_file": path.name, "round": round_number})
        return batch.id

    async def _wait(self, client, batch_id: str):
        batch = await client.batches.retrieve(batch_id)
        while batch.status not in TERMINAL:
            await asyncio.sleep(self.poll_interval)
            batch = await client.batches.retrieve(batch_id)
        return batch

    async def _lines(self, client, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        content = await client.files.content(file_id)
        return list(iter_objects(content.text.splitlines(), f"batch output file {file_id}"))

    def _request_ids(self, batch_id: str) -> list[str]:
        """custom_ids of the request file a batch was created from (found through the batch log)."""
        rows = read_resumable(self.state).rows
        request_file = next(row["request_file"] for row in rows if row["batch_id"] == batch_id and "request_file" in row)
        return [line["custom_id"] for line in read_objects(self.work_dir / request_file, what="batch request file")]

    async def _ingest(self, client, batch_id: str, pending: dict, writer: OutputWriter, stats: ChatRunStats,
                      last_round: bool) -> None:
        """Write what the batch answered; keep rejected or unanswered items pending unless this is the last round
        (an HTTP error inside the batch, or a reply over the size limit, is final at once)."""
        batch = await self._wait(client, batch_id)
        lines = await self._lines(client, batch.output_file_id) + await self._lines(client, batch.error_file_id)
        answers = {line["custom_id"]: line for line in lines}
        for custom_id in self._request_ids(batch_id):
            item = pending.get(custom_id)
            if item is None:  # written by an earlier run or round
                continue
            answer = answers.get(custom_id)
            reason = (self._ingest_line(item, answer, writer, stats) if answer
                      else f"missing from the batch output (batch {batch.status}{_batch_errors(batch)})")
            if reason is None or reason.startswith(("http", "reply over")) or last_round:
                del pending[custom_id]
                if reason is not None:
                    writer.failed(item, reason, self.model)
        self._log({"batch_id": batch_id, "ingested": True, "status": batch.status})

    def _ingest_line(self, item: GenerationItem, line: dict, writer: OutputWriter, stats: ChatRunStats) -> str | None:
        """Validate one output line and write it when accepted; return the reason it was not."""
        response = line.get("response") or {}
        if (line.get("error") or {}).get("code") == "batch_expired":  # not run in time: the next round asks again
            return "batch_expired: not run within the batch's completion window"
        if response.get("status_code") != 200:
            error = line.get("error") or (response.get("body") or {}).get("error") or {}
            return f"http {response.get('status_code')}: {error.get('code') or error.get('message', 'error')}"
        body = response["body"]
        message = body["choices"][0]["message"]
        usage = {name: (body.get("usage") or {}).get(name, 0)
                 for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
        if len((message.get("content") or "").encode()) > reply_byte_limit(self.settings):  # read, never written
            writer.count_tokens(self.model, usage)
            return oversized_reply(self.settings)
        prompt = self.prompt(item.task)
        try:
            if message.get("refusal"):
                raise RejectedOutput("refusal")
            pairs = self.parser(item)(message.get("content") or "")
        except RejectedOutput as rejection:
            stats.reject(str(rejection))
            writer.count_tokens(self.model, usage)  # a rejected reply is billed too
            return f"rejected: {rejection}"
        if self.cache is not None:
            self.cache.put(self.cache_key(item), {"content": message["content"], "usage": usage, "model": body.get("model")})
        stats.done += 1
        writer.done(item, pairs, self.model, prompt.version, usage)
        return None


def _batch_errors(batch) -> str:
    """": <messages>" of a batch's own `errors` (why a failed batch failed), or ""."""
    errors = getattr(getattr(batch, "errors", None), "data", None) or []
    messages = [error.message or error.code for error in errors if error.message or error.code]
    return f": {'; '.join(messages)}" if messages else ""
