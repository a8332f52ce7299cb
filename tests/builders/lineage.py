"""Trees of jobs: children spawned by hand (`spawning.spawn_child`) from jobs that ended DONE."""
from jobs import spawning
from jobs.models import JobSpec

from .documents import a_blueprint
from .jobs import to_done
from .people import as_actor


def spawned(parent: JobSpec, by, name: str, *, done: bool = False, **members) -> JobSpec:
    """A child blueprint job of `parent` named `name`, spawned by `by` (not the parent's submitter: four eyes);
    `done`: taken to DONE, so that it can have children of its own."""
    child, created = spawning.spawn_child(job_id=parent.job_id, blueprint=a_blueprint(name=name, **members),
                                          actor=as_actor(by))
    assert created, child.job_id
    if done:
        to_done(child.job_id)
    return child
