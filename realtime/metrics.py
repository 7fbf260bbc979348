from prometheus_client import Counter, Gauge

OPEN_SOCKETS = Gauge("telemed_websocket_connections", "Open authenticated WebSocket connections")
SOCKET_CLOSES = Counter(
    "telemed_websocket_closes_total", "WebSocket closes by close code", ["code"]
)

# The codes the protocol gives a meaning to (RFC 6455 and ours). A client chooses its own
# close code, anything from 1000 to 4999: counted as it came, one series each, a client
# could grow the metric by thousands of series.
KNOWN_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013}
    | {4401, 4403, 4409, 4429}
)


def close_code_label(code: object) -> str:
    """The ``code`` label for a close: the code itself if the protocol knows it, else ``other``."""
    return str(code) if code in KNOWN_CLOSE_CODES else "other"
