"""Jobs under approval rules (partial approvals, an escalation, a reminder, a deadline's rejection, an override)
export to bundles that the stand-alone verifier passes: it derives their state with the same rules."""
import pytest

from jobs.bundles import bundle_files
from tools.verify_bundle import verify_job

from ..builders import jobs_at_each_rule_state

pytestmark = pytest.mark.django_db


def test_jobs_under_approval_rules_export_and_verify(artifact_root, people, policy_root):
    jobs = jobs_at_each_rule_state(people, policy_root)
    for state, job in jobs.items():
        report = verify_job(bundle_files(job.job_id), job.job_id)
        # These jobs were built from events alone: their compile recorded a runspec that was never written. That
        # is the one finding; the chain, the signatures and the state derived under the rules all check out.
        assert [(f.file, f.seq) for f in report.findings] == [("outputs/runspec.json", 3)], (state, report.findings)
        assert "missing from the bundle" in report.findings[0].problem
