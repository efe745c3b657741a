"""AAA: the `aaa` server kind (RADIUS with health monitoring that tells clients to fail over) and
the pieces the router's RADIUS client shares with it (the failover message, its transports)."""
