"""Writes JSON log lines with real structlog or python-json-logger to a file, for
Bellwether's end-to-end test of JSON logger errors:
`python emit.py structlog|structlog-dict|python-json-logger FILE`.

Each logger writes, in its documented JSON setup: info lines, an error raised from a
cause, an ExceptionGroup, and a TypeError and a ValueError with one message.
`structlog` renders tracebacks as text (`format_exc_info`), `structlog-dict` as
structured data (`dict_tracebacks`).
"""

import logging
import sys


class PaymentError(Exception):
    pass


def cause_chain():
    try:
        try:
            raise ConnectionRefusedError("connect to 10.0.0.5:5432 refused")
        except ConnectionRefusedError as refused:
            raise LookupError("query on payments failed") from refused
    except LookupError as query:
        raise PaymentError("charge failed for order 42") from query


def group():
    raise ExceptionGroup(
        "all uploads failed",
        [TypeError("upload 1 has no body"), ValueError("upload 2 is too large")],
    )


# Two errors with one message and different types: two issues.
SAME_MESSAGE = "quota value 17 is invalid"


def typed():
    yield TypeError(SAME_MESSAGE)
    yield ValueError(SAME_MESSAGE)


def failures():
    """(what failed, the exception), each raised so that it has a traceback."""
    for what, raise_it in [("checkout failed", cause_chain), ("uploads failed", group)]:
        try:
            raise_it()
        except BaseException as error:  # noqa: BLE001 - every kind is logged
            yield what, error
    for error in typed():
        try:
            raise error
        except Exception as raised:  # noqa: BLE001
            yield "quota rejected", raised


def with_structlog(path, dict_tracebacks):
    import structlog

    out = open(path, "a", encoding="utf-8")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            (
                structlog.processors.dict_tracebacks
                if dict_tracebacks
                else structlog.processors.format_exc_info
            ),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=out),
    )
    log = structlog.get_logger()
    log.info("service started")
    for what, error in failures():
        log.exception(what, exc_info=error)
    log.info("service stopping", orders=3)
    out.close()


def with_python_json_logger(path):
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # python-json-logger < 3.1
        from pythonjsonlogger.jsonlogger import JsonFormatter

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log = logging.getLogger("shop")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("service started")
    for what, error in failures():
        log.error(what, exc_info=error)
    log.info("service stopping", extra={"orders": 3})
    handler.close()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in (
        "structlog",
        "structlog-dict",
        "python-json-logger",
    ):
        print("usage: emit.py structlog|structlog-dict|python-json-logger FILE", file=sys.stderr)
        return 2
    logger, path = sys.argv[1], sys.argv[2]
    if logger == "python-json-logger":
        with_python_json_logger(path)
    else:
        with_structlog(path, dict_tracebacks=logger == "structlog-dict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
