"""Notifications: e-mail and signed webhooks when a job waits for someone, is decided, escalated, errors or ends.

Derived from the event log by the worker's pass (notifications.services.run_pass), never fired from the append
path: a notification is always sent after its event committed, and a crash between the two loses nothing.
"""
