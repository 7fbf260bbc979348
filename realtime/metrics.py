from prometheus_client import Counter, Gauge

OPEN_SOCKETS = Gauge("telemed_websocket_connections", "Open authenticated WebSocket connections")
SOCKET_CLOSES = Counter(
    "telemed_websocket_closes_total", "WebSocket closes by close code", ["code"]
)
