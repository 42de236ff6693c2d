"""Configuration from the environment, and the files under SAFESHARE_HOME."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    temporal_address: str
    namespace: str
    home: Path
    database_url: str
    task_queue: str = "safeshare"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        home = Path(env.get("SAFESHARE_HOME", "var")).resolve()
        return cls(
            temporal_address=env.get("TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=env.get("TEMPORAL_NAMESPACE", "default"),
            home=home,
            database_url=env.get("SAFESHARE_DATABASE_URL", f"sqlite+aiosqlite:///{home / 'safeshare.db'}"),
            task_queue=env.get("SAFESHARE_TASK_QUEUE", "safeshare"),
        )

    @property
    def directory_file(self) -> Path:
        return self.home / "directory.yaml"

    @property
    def policy_file(self) -> Path:
        return self.home / "policy.yaml"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def store_key_file(self) -> Path:
        return self.keys_dir / "store.key"

    def agency_key_file(self, agency_id: str) -> Path:
        return self.keys_dir / "agencies" / f"{agency_id}.key"

    @property
    def temporal_db(self) -> Path:
        return self.home / "temporal.db"
