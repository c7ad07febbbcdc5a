"""Typed settings shared by every estate process (environment prefix ESTATE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-only-secret-key-change-me"  # noqa: S105 - refused in production


class Settings(BaseSettings):
    """Every knob of the platform; read from ESTATE_* variables or passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="ESTATE_", extra="ignore")

    profile: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    secret_key: str = DEFAULT_SECRET_KEY
    signing_key: str = Field(
        default="",
        description="Base64 Ed25519 private seed for signing commands; generated into data_dir "
        "when empty (development only).",
    )

    # MQTT: "embedded" means the in-process broker that `estate demo` runs.
    mqtt_url: str = "embedded"
    mqtt_public_url: str = Field(
        default="", description="Broker URL handed to devices at enrolment (defaults to mqtt_url)."
    )
    mqtt_control_url: str = Field(
        default="",
        description="Broker login that publishes commands and reads replies (the estate-control "
        "role); defaults to mqtt_url, whose ingest login may not publish commands.",
    )
    mqtt_admin_username: str = ""
    mqtt_admin_password: str = ""
    mqtt_credentials: Literal["dynsec", "none"] = Field(
        default="none",
        description="'dynsec' creates per-device identities in Mosquitto's dynamic security "
        "plugin; 'none' only for the embedded demo broker.",
    )
    mqtt_shared_group: str = "estate-ingest"
    mqtt_embedded_port: int = Field(
        default=18830, ge=1, le=65535, description="Port of the demo's in-process broker."
    )

    tsdb_url: str = ""
    tsdb_token: str = ""
    tsdb_org: str = "estate"
    tsdb_bucket: str = "estate"

    log_format: Literal["text", "json"] = Field(
        default="text", description="'json' writes one JSON object per log line (for shippers)."
    )

    celery_broker_url: str = "memory://"
    celery_result_backend: str = ""

    ingest_batch_size: int = Field(default=2000, ge=1, le=100_000)
    ingest_batch_ms: int = Field(default=100, ge=1, le=60_000)
    ingest_max_payload: int = Field(default=64 * 1024, ge=256)
    ingest_future_skew_s: int = Field(default=300, ge=0)
    ingest_metrics_port: int = Field(default=0, ge=0, le=65535)
    dead_letter_max: int = Field(default=10_000, ge=10)
    offline_after_s: int = Field(default=180, ge=10)
    sweep_interval_s: int = Field(default=30, ge=1)

    enrolment_token_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    demo_token: str = ""
    web_assets_dir: Path = Field(
        default=Path(__file__).resolve().parent.parent / "node_modules",
        description="Where npm installed govuk-frontend and @ministryofjustice/frontend.",
    )

    attachments_dir: Path | None = Field(
        default=None,
        description="Where fault attachments are stored (default data_dir/attachments).",
    )
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    smtp_url: str = Field(
        default="", description="smtp://host:port for SLA and alert emails; empty sends no email."
    )
    smtp_from: str = "estate@localhost"
    fault_silent_after_s: int = Field(
        default=3600, ge=60, description="A device silent this long raises a fault on its place."
    )

    public_base_url: str = Field(
        default="",
        description="Address staff reach the web UI at, e.g. https://estate.example.gov.uk; "
        "printed QR codes point there. Empty: the address the sheet was requested on.",
    )

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url_shape(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (not value.startswith(("https://", "http://")) or "?" in value):
            raise ValueError("must be empty or a URL like https://estate.example.gov.uk")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url_shape(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must be 'embedded' or a URL like mqtt://user:pass@host:1883")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_shape(cls, value: str) -> str:
        if value and not value.startswith("smtp://"):
            raise ValueError("must be empty or a URL like smtp://user:pass@relay.example:25")
        return value

    @field_validator("mqtt_control_url")
    @classmethod
    def _control_url_shape(cls, value: str) -> str:
        if value and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must be empty or a URL like mqtt://estate-control:pass@host:1883")
        return value

    @model_validator(mode="after")
    def _production_refuses_defaults(self) -> Settings:
        if self.profile == "production":
            problems = []
            if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
                problems.append("ESTATE_SECRET_KEY must be set to a random value of 32+ chars")
            if not self.signing_key:
                problems.append("ESTATE_SIGNING_KEY must be set (estate keys generate)")
            if not self.database_url.startswith("postgresql"):
                problems.append("ESTATE_DATABASE_URL must point at PostgreSQL")
            if self.mqtt_url == "embedded":
                problems.append("ESTATE_MQTT_URL must point at the production broker")
            if problems:
                raise ValueError("production profile refused: " + "; ".join(problems))
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'estate.db').as_posix()}"

    @property
    def effective_mqtt_url(self) -> str:
        if self.mqtt_url == "embedded":
            return f"mqtt://127.0.0.1:{self.mqtt_embedded_port}"
        return self.mqtt_url

    @property
    def control_mqtt_url(self) -> str:
        return self.mqtt_control_url or self.effective_mqtt_url

    @property
    def device_mqtt_url(self) -> str:
        return self.mqtt_public_url or self.effective_mqtt_url

    @property
    def effective_attachments_dir(self) -> Path:
        return self.attachments_dir or self.data_dir / "attachments"

    @property
    def embedded_mqtt(self) -> bool:
        return self.mqtt_url == "embedded"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
