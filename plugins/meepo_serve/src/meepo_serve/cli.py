"""``meepo serve``: the command that runs the service."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket

import click
import uvicorn

from meepo_core import ConfigError, MeepoError

from .app import create_app
from .compat import Server
from .config import ServeConfig
from .redaction import redact_logs
from .supervisor import Supervisor

log = logging.getLogger("meepo.serve")
#: Shorter tokens are refused: guessable, and masking them in messages would mangle words.
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use or a bad address is a
    :class:`ConfigError` naming the option and the fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError("--port", f"{host}:{port} is already in use; stop what listens "
                              "there or pick another port (--port, or port in "
                              "[tool.meepo.serve]; 0 picks a free one)") from None
        raise ConfigError("--host", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


@click.command()
@click.argument("names", nargs=-1)
@click.option("--host", help="Address to listen on (default 127.0.0.1, or host in "
              "[tool.meepo.serve]).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port to listen on (default 8080, or port in [tool.meepo.serve]; 0 picks "
              "a free one).")
@click.pass_context
def serve(ctx: click.Context, names: tuple[str, ...], host: str | None,
          port: int | None) -> None:
    """Run every pipeline of the config (or only NAMES) in one supervised process, with a
    JSON API, health checks, Prometheus metrics and a live status page (meepo-serve).

    A failing pipeline is restarted with exponential backoff while the others keep
    delivering. SIGTERM stops every pipeline gracefully; SIGHUP (or POST /reload) reloads
    the config, touching only pipelines that were added, removed or changed.

    \b
    Examples:
      meepo serve                         status page on http://127.0.0.1:8080/
      meepo serve orders search           only these pipelines
      MEEPO_SERVE_TOKEN=... meepo serve --host 0.0.0.0 --port 8080
    """
    config = ctx.find_root().obj.config
    settings = ServeConfig.load(config.path)
    host = host or settings.host
    port = settings.port if port is None else port
    token = settings.token
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(settings.token_env, f"the token is too short; use at least "
                          f"{MIN_TOKEN_LENGTH} characters, e.g. the output of python3 -c "
                          "'import secrets; print(secrets.token_urlsafe())'")
    if token is None and not is_loopback(host):
        raise ConfigError("--host", f"{host} is not a loopback address and no token is set; "
                          f"export {settings.token_env} (every change through the API then "
                          "needs it), or listen on 127.0.0.1")
    redact_logs((token,) if token else ())
    sock = bind(host, port)
    supervisor = Supervisor(config.path, names, settings)
    try:
        supervisor.start()
    except BaseException:
        sock.close()
        raise

    def reload() -> None:
        try:
            supervisor.reload()
        except MeepoError as exc:
            log.error("config not reloaded, nothing changed: %s", exc)

    app = create_app(supervisor, token)
    server = Server(uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                                   timeout_graceful_shutdown=2), reload)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"meepo serve: {len(supervisor.all())} pipelines on http://{shown}:{bound_port}/"
               f" (API: /pipelines, /readyz, /metrics, /openapi.json)", err=True)
    try:
        server.run(sockets=[sock])
    finally:
        late = supervisor.stop()
    click.echo("meepo serve: stopped" + (f"; did not stop in time: {', '.join(late)}"
                                         if late else ""), err=True)
    if late:
        raise SystemExit(1)
