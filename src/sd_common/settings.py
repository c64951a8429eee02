"""The one settings class shared by sd-coordinator and sd-worker (DESIGN §2)."""

from __future__ import annotations

import re
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, FilePath, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

NAME_PATTERN = r"^[\w.\-@]{1,64}$"  # a node's name, in settings and on the wire
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
AMQPS_PORT = 5671


class Settings(BaseSettings):
    """Read from the environment and from `.env` in the working directory; CLI flags override."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    coordinator_ip: str = Field("127.0.0.1", description="where workers reach the coordinator")
    coordinator_port: int = Field(8000, ge=1, le=65535, description="coordinator HTTP port")
    coordinator_bind: str | None = Field(
        None,
        description="address the coordinator listens on; unset: 127.0.0.1 in embedded mode, "
        "0.0.0.0 with RabbitMQ",
    )
    rabbit_host: str | None = Field(None, description="RabbitMQ host; unset = embedded queue")
    rabbit_port: int = Field(5672, ge=1, le=65535)
    rabbit_user: str = "guest"
    rabbit_pass: str = "guest"
    rabbit_vhost: str = "/"
    rabbit_tls: bool = Field(False, description="connect with amqps (TLS)")
    rabbit_ca_file: FilePath | None = Field(None, description="CA bundle to verify the broker")
    rabbit_cert_file: FilePath | None = Field(None, description="client certificate (PEM)")
    rabbit_key_file: FilePath | None = Field(None, description="client private key (PEM)")
    queue_name: str = Field("tareas", min_length=1, max_length=200, pattern=r"^[\w.\-:]+$")
    node_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64)
    cluster_token: str | None = Field(None, description="shared secret for worker endpoints")
    api_token: str | None = Field(None, description="optional token for the user API")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="more host names the coordinator answers to (besides localhost, its "
        "addresses, its host name and COORDINATOR_IP); * answers any",
    )
    data_dir: Path = Path("./sd-data")
    max_upload_mb: float = Field(20, gt=0)
    max_image_pixels: int = Field(50_000_000, gt=0, description="larger images are rejected")
    cpu_limit: float = Field(100, gt=0, le=100)
    png_compress_level: int = Field(1, ge=0, le=9, description="zlib level of result PNGs")
    pillow_blocks_max: int = Field(
        0,
        ge=0,
        le=1024,
        description="image memory blocks (at most 16 MB each) every pool process keeps for the "
        "next image, Pillow's PILLOW_BLOCKS_MAX; 0, Pillow's default, keeps none and leaves "
        "freed image memory to the C library, which reuses it without faulting pages in again",
    )
    pool_memory_mb: int = Field(
        2048,
        ge=0,
        description="worker: address space each pool process may use; a task past it fails "
        "out of memory and its process is replaced (0: no cap)",
    )
    task_time_limit_s: float = Field(
        300,
        ge=0,
        description="worker: a task running longer in the pool fails, and its process is "
        "killed and replaced (0: no limit)",
    )
    max_event_streams: int = Field(
        100, ge=1, description="coordinator: live GET /events streams at once; more get 503"
    )
    shared_storage: Literal["auto", "off"] = Field(
        "auto",
        description="auto: a worker that sees the coordinator's DATA_DIR (same machine or a "
        "shared mount) reads inputs and writes results there instead of over HTTP",
    )
    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra modules that register custom task types"
    )
    portable_runtime: bool = Field(
        False,
        description="run as on Windows and macOS everywhere: a concurrent.futures process pool "
        "with the spawn start method, stop signals through signal.signal, asyncio's own loop",
    )
    report_interval_s: float = Field(1.0, gt=0)
    tune_interval_s: float = Field(3.0, gt=0)
    delivery_limit: int = Field(5, ge=1)
    zip_downloads_max: int = Field(
        4, ge=1, le=1000, description="zip downloads of job results running at once (503 past)"
    )
    academic_db: Path | None = Field(
        None, description="SQLite file of the academic records; unset: DATA_DIR/academico.sqlite3"
    )
    academic_in_process: bool = Field(
        True,
        description="with RabbitMQ, the coordinator runs the academic service itself; "
        "false when sd-academic runs elsewhere",
    )
    academic_timeout_s: float = Field(
        5.0, gt=0, le=120, description="how long the REST layer waits for the academic service"
    )
    academic_queue: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[\w.\-:]+$",
        description="queue of academic commands; unset: <QUEUE_NAME>.academico.rpc",
    )
    academic_exchange: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[\w.\-:]+$",
        description="topic exchange of academic changes; unset: <QUEUE_NAME>.academico.events",
    )
    rabbit_public_api: bool = Field(
        False,
        description="publish and consume through aio-pika's public API only, not the aiormq "
        "channel beneath it (slower; for comparison, or if an aio-pika upgrade breaks the fast "
        "path)",
    )
    rabbit_heartbeat_s: int = Field(
        10,
        ge=0,
        le=600,
        description="AMQP heartbeat: the broker gives a silent connection's unacked tasks back "
        "after about two of these (0: the broker's own, usually 60)",
    )

    @field_validator("cors_origins", "task_modules", "allowed_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "rabbit_host",
        "cluster_token",
        "api_token",
        "coordinator_bind",
        "rabbit_ca_file",
        "rabbit_cert_file",
        "rabbit_key_file",
        "academic_db",
        "academic_queue",
        "academic_exchange",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("node_name")
    @classmethod
    def _a_name_the_wire_takes(cls, value: str) -> str:
        # The same rule as the worker's messages (sd_common.messages.NAME), said in words.
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(
                "a node name is letters, digits, '.', '-', '_' or '@', with no spaces or '/'"
            )
        return value

    @field_validator("coordinator_ip", "rabbit_host")
    @classmethod
    def _a_host_alone(cls, value: str | None, info: ValidationInfo) -> str | None:
        # "http://1.2.3.4:8000" or "1.2.3.4:5672" would fail later as a host name that does
        # not resolve; the port has its own setting (an IPv6 address has several colons).
        if value is None:
            return value
        port = "COORDINATOR_PORT" if info.field_name == "coordinator_ip" else "RABBIT_PORT"
        if "://" in value:
            raise ValueError(f"give the address or name alone, not a URL (the port in {port})")
        host, colon, digits = value.rpartition(":")
        if colon and digits.isdigit() and ":" not in host:
            raise ValueError(f"give the address alone: {host}, and the port in {port}={digits}")
        return value

    @model_validator(mode="after")
    def _amqps_port(self) -> Settings:
        # amqps listens on 5671, not 5672: RABBIT_TLS=true alone should just work.
        if self.rabbit_tls and "rabbit_port" not in self.model_fields_set:
            self.rabbit_port = AMQPS_PORT
        return self

    @property
    def embedded(self) -> bool:
        """True when no RabbitMQ is configured: the coordinator runs its own queue and worker."""
        return self.rabbit_host is None

    @property
    def bind_host(self) -> str:
        """The address the coordinator listens on."""
        if self.coordinator_bind:
            return self.coordinator_bind
        return "127.0.0.1" if self.embedded else "0.0.0.0"

    @property
    def coordinator_url(self) -> str:
        """Base URL a worker uses to reach the coordinator."""
        host = self.coordinator_ip
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.coordinator_port}"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
