"""Where a job's artifacts live (DESIGN §7): `jobs/<job_id>/...`, relative to the artifacts storage root."""


def job_path(job_id: str, *parts: str) -> str:
    return "/".join(["jobs", job_id, *parts])


def runspec_path(job_id: str) -> str:
    return job_path(job_id, "outputs", "runspec.json")


def gate_results_path(job_id: str) -> str:
    return job_path(job_id, "outputs", "gate_results.json")


def blueprint_path(job_id: str) -> str:
    """An idea job's blueprint: the intent agent's proposal, which the blueprint checkpoint reviews and compile
    reads."""
    return job_path(job_id, "outputs", "blueprint.json")


def agent_path(job_id: str, agent_id: str, name: str) -> str:
    return job_path(job_id, "outputs", "agents", agent_id, name)
