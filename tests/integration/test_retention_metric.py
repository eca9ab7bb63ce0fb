"""Retention's work shows on /metrics: `edged_journal_executions_pruned_total` counts the
finished executions a prune removed. A real engine on a real journal file, the telemetry
the daemon serves, read through the strict text-format parser."""

from __future__ import annotations

from pathlib import Path

import promtext
import trio

from edged.config import Config
from edged.daemon import build_engine, journal_settings
from edged.handlers import HandlerRegistry
from edged.journal import Batch, open_journal
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.telemetry import Telemetry
from tests.journal.journal_builders import execution


async def test_pruned_executions_are_counted(tmp_path: Path) -> None:
    cfg = Config(data_dir=tmp_path)
    cfg.retention_max_count = 3
    with trio.fail_after(30):
        async with open_journal(tmp_path / "j.db", settings=journal_settings(cfg)) as journal:
            engine = build_engine(
                journal, DefinitionRegistry(), cfg, handler_registry=HandlerRegistry()
            )
            telemetry = Telemetry(engine)

            def pruned() -> float:
                text = telemetry.registry.render()
                return promtext.parse(text).value("edged_journal_executions_pruned_total")

            assert pruned() == 0
            batch = Batch()
            for i in range(10):
                batch.executions.append(
                    execution(f"done-{i}", status="COMPLETED", created_ms=i, ended_ms=i + 1)
                )
            await journal.commit(batch)
            assert await journal.prune(now_ms=10_000) == 7
            assert pruned() == 7
