"""Running under systemd: readiness and watchdog, health and metrics over HTTP, structured logs."""
