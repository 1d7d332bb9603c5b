"""Settings shared by every command: broker URL, metrics port, logging; and the CLI loader.

Each command (worker, camera agent, demo, each trainer subcommand, the bench) has a
pydantic-settings model (env prefix ``SORTLINE_``) whose fields double as its command-line flags,
so ``--help`` shows each field's description, bounds or allowed values, default and environment
variable (:mod:`sortline.cli_help`), and every flag has an environment variable ``SORTLINE_<FLAG>``.
Choices (``--log-level``, ``--log-format``, ...) are accepted in any case.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from sortline.build_info import version_text
from sortline.cli_help import canonical_choice, choice_spellings, cli_source, plain_text
from sortline.connection import TlsFiles
from sortline.log_format import JsonFormatter
from sortline.provisioning import TopologyMode

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"

S = TypeVar("S", bound=BaseSettings)

#: The services (worker, camera agent, ejector bridge) serve /metrics, /healthz and /readyz on one
#: port (sortline.health.serve_metrics); each has its own default, so the field is theirs.
METRICS_PORT_HELP = (
    "Port of /metrics (Prometheus), /healthz and /readyz; 0 = any free port (the log names it). "
    "Two processes on one host need two ports."
)


class CliSettings(BaseSettings):
    """What every command's settings share: the env prefix, kebab-case flags, choices in any case."""

    model_config = SettingsConfigDict(
        env_prefix="SORTLINE_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        extra="ignore",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="Logging level; DEBUG also shows the broker client's (pika's) own errors and tracebacks.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as one JSON object per line (time, level, logger, message, "
        "exception) for a log collector.",
    )
    version: bool = Field(False, description="Print the version and exit.")

    @field_validator("*", mode="before")
    @classmethod
    def _choice_in_any_case(cls, value: object, info: ValidationInfo) -> object:
        """``--log-level debug``, ``SORTLINE_LOG_FORMAT=JSON``: a choice is a word, not its spelling."""
        spellings = choice_spellings(cls.model_fields[info.field_name].annotation) if info.field_name else {}
        return canonical_choice(value, spellings) if spellings else value


class SortlineSettings(CliSettings):
    """Fields every process that talks to the broker has."""

    amqp_url: SecretStr = Field(
        SecretStr(DEFAULT_AMQP_URL),
        validation_alias=AliasChoices("amqp_url", "SORTLINE_AMQP_URL", "AMQP_URL"),
        description="RabbitMQ URL, amqp:// or amqps://. Never logged with its password.",
    )
    amqp_url_file: Path | None = Field(
        None,
        description="File holding the broker URL (a Docker or Kubernetes secret); overrides --amqp-url.",
    )
    tls_ca_file: Path | None = Field(
        None,
        description="CA bundle that signed the broker's certificate (amqps://); default: the system's CAs.",
    )
    tls_cert_file: Path | None = Field(None, description="Client certificate for mutual TLS (amqps://).")
    tls_key_file: Path | None = Field(None, description="Private key of --tls-cert-file.")
    max_retry_seconds: float = Field(
        30.0, gt=0.0, le=3600.0, description="Longest wait between reconnect attempts to the broker."
    )
    topology: TopologyMode = Field(
        "declare",
        description="declare: declare the exchanges and queues used at start (needs configure rights, "
        "as on a development broker); check: only check that they exist, for a broker user without "
        "configure rights whose topology comes from the broker's definitions (a plant).",
    )

    @model_validator(mode="after")
    def _read_url_file(self) -> SortlineSettings:
        """Secrets arrive as files in containers; read it here so no entrypoint has to export it."""
        if self.amqp_url_file is not None:
            try:
                url = self.amqp_url_file.read_text().strip()
            except OSError as error:
                raise ValueError(f"cannot read {self.amqp_url_file}: {error.strerror}") from None
            if not url.startswith(("amqp://", "amqps://")):
                raise ValueError(f"{self.amqp_url_file} does not hold an amqp:// or amqps:// URL")
            self.amqp_url = SecretStr(url)
        elif not self.amqp_url.get_secret_value().startswith(("amqp://", "amqps://")):
            # An empty variable (a Secret key that is missing or blank) would otherwise make pika
            # connect to guest@localhost, which is never what a deployment meant.
            raise ValueError(
                "the broker URL is empty or not an amqp:// or amqps:// URL: set --amqp-url-file, "
                "SORTLINE_AMQP_URL or AMQP_URL"
            )
        return self

    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)


def redact_url(url: str) -> str:
    """The URL with its password replaced, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_cli(settings_class: type[S], argv: Sequence[str] | None, prog: str) -> S:
    """Build settings from defaults, environment and flags; a bad value exits 2 with a clear message.

    ``--version`` prints the version and exits 0 before anything else is checked, so it works
    without the flags a command requires.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    exit_with_version_if_asked(args, prog)
    try:
        return settings_class(_cli_settings_source=cli_source(settings_class, prog)(args=args))
    except ValidationError as error:
        for problem in error.errors():
            # A list item's index is no part of the flag's name (``--bins: ...``, not ``--bins-0``).
            where = "-".join(str(p) for p in problem["loc"] if not isinstance(p, int)).replace("_", "-")
            prefix = f"--{where}: " if where else ""
            print(f"{prog}: {prefix}{problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def parse_command(
    commands: Mapping[str, type[CliSettings]], argv: Sequence[str] | None, prog: str, about: str
) -> tuple[str, CliSettings]:
    """``prog COMMAND [flags]``: the command's name and its settings, parsed by :func:`parse_cli`.

    Each command is a settings class of its own, so its flags keep plain ``SORTLINE_<FLAG>``
    environment variables. No command, or ``--help``, prints the commands (exit 2, or 0 for help).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    exit_with_version_if_asked(args[:1], prog)
    if not args or args[0] in ("-h", "--help") or args[0] not in commands:
        width = max(len(name) for name in commands)
        lines = [f"usage: {prog} {{{','.join(commands)}}} ...", "", plain_text(about), "", "commands:"]
        lines += [
            f"  {name:<{width}}  {plain_text(_first_line(cls.__doc__))}" for name, cls in commands.items()
        ]
        lines += ["", f"'{prog} COMMAND --help' explains every flag of a command."]
        asked_for_help = bool(args) and args[0] in ("-h", "--help")
        print("\n".join(lines), file=sys.stdout if asked_for_help else sys.stderr)
        if args and not asked_for_help:
            print(f"{prog}: unknown command {args[0]!r}", file=sys.stderr)
        raise SystemExit(0 if asked_for_help else 2)
    return args[0], parse_cli(commands[args[0]], args[1:], f"{prog} {args[0]}")


def exit_with_version_if_asked(args: Sequence[str], prog: str) -> None:
    if "--version" in args:
        print(f"{prog} {version_text()}")
        raise SystemExit(0)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level``, as text lines or (``json``) one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # pika logs each failed connection attempt as several ERROR lines and a traceback; every
    # process says the same in one line (sortline.broker_retry), so pika speaks only when debugging.
    logging.getLogger("pika").setLevel(logging.WARNING if level == "DEBUG" else logging.CRITICAL + 1)
