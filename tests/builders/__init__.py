"""Every builder of the tests, in one place: import them from here. The modules sort them by concept: documents
(blueprints, ideas, job specs), snapshots, people and their clients, events, jobs in each state, and what was
written."""
from .approvals import a_rules_bundle, jobs_at_each_rule_state, reviewers_in, two_of  # noqa: F401
from .bundles import an_idea_job_with_reruns_and_children, exported, finished_jobs  # noqa: F401
from .clients import ADMIN, assert_error, client_for, job_page, post_json, session_client, texts  # noqa: F401
from .documents import (  # noqa: F401
    BARE, FAMILIES, PIPELINE, RESEARCH, SMALL_SYMBOLS, TINY_SYMBOLS, a_blueprint, a_job_spec, an_idea,
)
from .events import (  # noqa: F401
    SHA_A, SHA_B, WORKER, append, compiled, completed, failed, gated, rerun, started, waiting,
)
from .ideas import (  # noqa: F401
    IDEA_CHECKPOINTS, TINY_IDEA, a_budget_bundle, an_idea_for_tiny, approve_via_api, idea_worker, waiting_at,
    walk_idea_to_done,
)
from .idea_reviews import an_idea_job_at, overwrite_artifact  # noqa: F401
from .file_stores import a_v1_store, rewrite_events  # noqa: F401
from .gated_runs import GatedRun, a_gated_run, a_snapshot_with_other_holdout  # noqa: F401
from .jobs import (  # noqa: F401
    TINY_RUN, approve_waiting, cancelled_job, done_job, done_job_with_run, error_job, idea_waiting, job_with_events,
    jobs_in_every_status, new_blueprint_job, ran_job, rejected_job, run_id_of, running_job, stopped_job, submitted,
    to_done, to_error, to_runspec_review, waiting_job,
)
from .lineage import spawned  # noqa: F401
from .people import REVIEWER, SUBMITTER, People, a_user, as_actor, make_people  # noqa: F401
from .snapshots import FOUR_YEARS, MONTH, SNAPSHOT, TINY_SNAPSHOT, a_snapshot, small_csv  # noqa: F401
from .tampering import forged_event, guard_off, insert_rows  # noqa: F401
from .store import counts, store_snapshot, stored_files, table_rows  # noqa: F401
from .model_server import Reply, a_closed_port, a_model_server, chat_completion, rule_based_answer  # noqa: F401
from .notifications import (  # noqa: F401
    SECRET, SECRET_ENV, a_webhook_receiver, hook_config, hook_env, plan_from_here, with_email,
)
