"""The processes' log handler (observability/logsink.py): ready-made lines given on an event loop
are written once per loop step, records at once, in order, and nothing is lost or reordered."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pytest

from jamey_engine.observability.logsink import FORMAT, StepBufferedHandler, direct_sink

NAME = "jamey_test_logsink"


class CountingStream(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def sink() -> tuple[logging.Logger, StepBufferedHandler, CountingStream]:
    """A logger whose records reach one StepBufferedHandler, as setup_logging builds it."""
    stream = CountingStream()
    handler = StepBufferedHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    # A logger of its own, outside the logging tree (and so out of reach of pytest's capture).
    logger = logging.Logger(NAME, logging.INFO)
    logger.addHandler(handler)
    return logger, handler, stream


def test_lines_given_in_one_loop_step_are_written_together_at_its_end(sink) -> None:
    _, handler, stream = sink
    seen_inside: list[str] = []

    async def step() -> None:
        for n in range(5):
            handler.line(NAME, logging.INFO, f"request {n}")
        seen_inside.append(stream.getvalue())  # nothing written yet: the step is still running
        await asyncio.sleep(0)  # the loop runs its ready callbacks: the gathered lines go out

    asyncio.run(step())
    assert seen_inside == [""]
    assert stream.getvalue() == "".join(f"INFO jamey_test_logsink: request {n}\n" for n in range(5))
    assert stream.writes == 1


def test_a_record_comes_after_the_lines_gathered_before_it_and_is_not_held(sink) -> None:
    logger, handler, stream = sink
    written_at_once: list[str] = []

    async def step() -> None:
        handler.line(NAME, logging.INFO, "first, on the loop")
        thread = threading.Thread(target=logger.warning, args=("second, from a thread",))
        thread.start()
        thread.join()
        logger.info("third, a record on the loop")
        written_at_once.append(stream.getvalue())
        handler.line(NAME, logging.INFO, "fourth, on the loop")
        await asyncio.sleep(0)

    asyncio.run(step())
    lines = [
        "INFO jamey_test_logsink: first, on the loop",
        "WARNING jamey_test_logsink: second, from a thread",
        "INFO jamey_test_logsink: third, a record on the loop",
    ]
    assert written_at_once == ["".join(f"{line}\n" for line in lines)]
    assert stream.getvalue().splitlines() == [*lines, "INFO jamey_test_logsink: fourth, on the loop"]


def test_lines_gathered_on_a_loop_that_stopped_are_written_by_flush_or_the_next_line(sink) -> None:
    _, handler, stream = sink

    async def log_and_stop() -> None:
        handler.line(NAME, logging.INFO, "last line of a stopping loop")
        # The loop closes after this coroutine returns: its flush callback may never run.

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_stop())
    loop.close()
    handler.flush()  # what logging.shutdown() does at exit
    assert stream.getvalue() == "INFO jamey_test_logsink: last line of a stopping loop\n"

    async def on_another_loop() -> None:
        handler._pending.append("INFO jamey_test_logsink: gathered on a loop now gone\n")
        handler._loop = loop
        handler.line(NAME, logging.INFO, "on a new loop")
        await asyncio.sleep(0)

    asyncio.run(on_another_loop())
    assert stream.getvalue().splitlines()[1:] == [
        "INFO jamey_test_logsink: gathered on a loop now gone",
        "INFO jamey_test_logsink: on a new loop",
    ]


def test_off_a_loop_a_line_is_written_at_once(sink) -> None:
    logger, handler, stream = sink
    handler.line(NAME, logging.INFO, "from the CLI")
    logger.info("and a record")
    assert (
        stream.getvalue() == "INFO jamey_test_logsink: from the CLI\nINFO jamey_test_logsink: and a record\n"
    )


def test_direct_sink_is_the_handler_only_when_a_record_would_reach_it_alone_unfiltered(sink) -> None:
    logger, handler, _ = sink
    assert direct_sink(logger, logging.INFO) is handler
    assert direct_sink(logger, logging.DEBUG) is handler  # the level is the logger's to check
    handler.setLevel(logging.WARNING)
    assert direct_sink(logger, logging.INFO) is None
    handler.setLevel(logging.NOTSET)
    logger.addFilter(lambda record: True)
    assert direct_sink(logger, logging.INFO) is None
    logger.filters.clear()
    capture = logging.StreamHandler(io.StringIO())
    logger.addHandler(capture)  # a second handler (a test's capture): records, not lines
    assert direct_sink(logger, logging.INFO) is None
    logger.removeHandler(capture)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    assert direct_sink(logger, logging.INFO) is None


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_a_direct_line_is_written_as_the_record_would_be(sink, level: int) -> None:
    logger, handler, stream = sink
    message = '127.0.0.1 "POST /memories" 201 1.5ms key=writer'

    async def step() -> None:
        logger.log(level, "%s", message)
        found = direct_sink(logger, level)
        assert found is handler
        found.line(logger.name, level, message)
        await asyncio.sleep(0)

    asyncio.run(step())
    record_line, direct_line = stream.getvalue().splitlines()
    assert record_line == direct_line
