"""Who does something: a user, a worker or the system. Recorded on every event."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str

    @classmethod
    def user(cls, user) -> "Actor":
        return cls("user", user.get_username() if hasattr(user, "get_username") else str(user))

    @classmethod
    def worker(cls, worker_id: str) -> "Actor":
        return cls("worker", worker_id)

    @classmethod
    def system(cls, name: str = "eam") -> "Actor":
        return cls("system", name)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id}

    def __str__(self):
        return f"{self.kind}:{self.id}"
