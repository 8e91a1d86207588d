# ruff: noqa: E501
"""The PostgreSQL schema at SCHEMA_HEAD and the gate's queries, rendered from
tables.py and store.py by `python -m remediate.store.schema`
(tests/unit/test_schema.py keeps them equal). A first start on an empty database
sends the schema in one round trip; start-up and /health need no SQLAlchemy.
"""

from typing import Any

STATEMENTS = (
    'CREATE TABLE chain_runs (\n\tid SERIAL NOT NULL, \n\tchain VARCHAR(128) NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tstarted_at FLOAT NOT NULL, \n\tfinished_at FLOAT, \n\tstatus VARCHAR(16) NOT NULL, \n\tspec JSON NOT NULL, \n\towner VARCHAR(128), \n\tlease_expires_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE flags (\n\tname VARCHAR(64) NOT NULL, \n\tvalue JSON NOT NULL, \n\tupdated_at FLOAT NOT NULL, \n\tPRIMARY KEY (name)\n)',
    'CREATE TABLE forecasts (\n\tid SERIAL NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tresource VARCHAR(256) NOT NULL, \n\tcurrent FLOAT NOT NULL, \n\ttrend_per_day FLOAT NOT NULL, \n\thorizon_at FLOAT NOT NULL, \n\tpredicted FLOAT NOT NULL, \n\tseconds_to_full FLOAT, \n\tseverity VARCHAR(16) NOT NULL, \n\tconfidence FLOAT NOT NULL, \n\tscored_at FLOAT, \n\tactual FLOAT, \n\tscore FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_forecasts_resource_created_at ON forecasts (resource, created_at)',
    'CREATE TABLE leases (\n\tkey VARCHAR(400) NOT NULL, \n\texecution_id INTEGER NOT NULL, \n\towner VARCHAR(128) NOT NULL, \n\tacquired_at FLOAT NOT NULL, \n\texpires_at FLOAT NOT NULL, \n\tPRIMARY KEY (key)\n)',
    'CREATE TABLE observations (\n\tid SERIAL NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tcycle VARCHAR(32) NOT NULL, \n\tkind VARCHAR(32) NOT NULL, \n\tresource VARCHAR(256) NOT NULL, \n\tseverity VARCHAR(16) NOT NULL, \n\tconfidence FLOAT NOT NULL, \n\tsummary TEXT NOT NULL, \n\tdecision VARCHAR(16) NOT NULL, \n\treason TEXT NOT NULL, \n\tplaybook VARCHAR(128), \n\tdecision_id INTEGER, \n\tdata JSON, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_observations_created_at ON observations (created_at)',
    'CREATE INDEX ix_observations_cycle ON observations (cycle)',
    'CREATE TABLE requests (\n\tid SERIAL NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tplaybook VARCHAR(128), \n\tchain VARCHAR(128), \n\tparameters JSON NOT NULL, \n\talertname VARCHAR(256), \n\tfingerprint VARCHAR(128), \n\tlabels JSON, \n\tannotations JSON, \n\talert_starts_at FLOAT, \n\talert_ends_at FLOAT, \n\tconfidence FLOAT NOT NULL, \n\tforced BOOLEAN NOT NULL, \n\tdry_run BOOLEAN NOT NULL, \n\tchain_run_id INTEGER, \n\ttimeout_seconds FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_requests_resolved ON requests (fingerprint, alert_starts_at, alert_ends_at, created_at) WHERE alert_ends_at IS NOT NULL',
    'CREATE TABLE samples (\n\tid SERIAL NOT NULL, \n\tat FLOAT NOT NULL, \n\tresource VARCHAR(256) NOT NULL, \n\tused FLOAT NOT NULL, \n\tcapacity FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_samples_at ON samples (at)',
    'CREATE INDEX ix_samples_resource_at ON samples (resource, at)',
    'CREATE TABLE chain_steps (\n\trun_id INTEGER NOT NULL, \n\tposition INTEGER NOT NULL, \n\tplaybook VARCHAR(128) NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\texecution_id INTEGER, \n\tstarted_at FLOAT, \n\tfinished_at FLOAT, \n\tdetail TEXT, \n\tPRIMARY KEY (run_id, position), \n\tFOREIGN KEY(run_id) REFERENCES chain_runs (id)\n)',
    'CREATE TABLE decisions (\n\tid SERIAL NOT NULL, \n\trequest_id INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tplaybook VARCHAR(128), \n\talertname VARCHAR(256), \n\ttarget VARCHAR(256), \n\taction VARCHAR(16) NOT NULL, \n\tcheck_name VARCHAR(32), \n\treason TEXT NOT NULL, \n\tconfidence FLOAT NOT NULL, \n\tforced BOOLEAN NOT NULL, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(request_id) REFERENCES requests (id)\n)',
    'CREATE INDEX ix_decisions_action_created_at ON decisions (action, created_at)',
    'CREATE INDEX ix_decisions_created_at ON decisions (created_at)',
    "CREATE INDEX ix_decisions_refusals ON decisions (action, created_at, check_name, playbook, reason) WHERE action IN ('block', 'escalate')",
    'CREATE INDEX ix_decisions_request_id ON decisions (request_id)',
    'CREATE TABLE approvals (\n\tid SERIAL NOT NULL, \n\tdecision_id INTEGER NOT NULL, \n\trequest_id INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\texpires_at FLOAT NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\tdecided_at FLOAT, \n\tdecided_by VARCHAR(128), \n\tnote TEXT, \n\toutcome_decision_id INTEGER, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(decision_id) REFERENCES decisions (id), \n\tFOREIGN KEY(request_id) REFERENCES requests (id)\n)',
    'CREATE INDEX ix_approvals_status ON approvals (status)',
    'CREATE TABLE executions (\n\tid SERIAL NOT NULL, \n\tdecision_id INTEGER NOT NULL, \n\tattempt INTEGER NOT NULL, \n\tplaybook VARCHAR(128) NOT NULL, \n\ttarget VARCHAR(256) NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\talertname VARCHAR(256), \n\tidempotency_key VARCHAR(512), \n\tforced BOOLEAN NOT NULL, \n\tadmitted_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tfinished_at FLOAT, \n\tstatus VARCHAR(16) NOT NULL, \n\tduration_seconds FLOAT, \n\troot_cause VARCHAR(64), \n\tsummary TEXT, \n\tstdout TEXT, \n\tstderr TEXT, \n\tactions JSON, \n\tdetails JSON, \n\tlease_owner VARCHAR(128), \n\tlease_expires_at FLOAT, \n\tfingerprint VARCHAR(128), \n\talert_starts_at FLOAT, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(decision_id) REFERENCES decisions (id)\n)',
    'CREATE INDEX ix_executions_admitted_at ON executions (admitted_at)',
    'CREATE INDEX ix_executions_alertname_admitted_at ON executions (alertname, admitted_at)',
    'CREATE INDEX ix_executions_idempotency_key_admitted_at ON executions (idempotency_key, admitted_at)',
    'CREATE INDEX ix_executions_playbook_admitted_at ON executions (playbook, admitted_at)',
    'CREATE INDEX ix_executions_report_runs ON executions (playbook, source, status, admitted_at, attempt, duration_seconds)',
    'CREATE INDEX ix_executions_root_cause ON executions (root_cause, admitted_at, attempt, status) WHERE root_cause IS NOT NULL',
    'CREATE INDEX ix_executions_status ON executions (status)',
    'CREATE TABLE execution_keys (\n\texecution_id INTEGER NOT NULL, \n\trule VARCHAR(128) NOT NULL, \n\tkey VARCHAR(512) NOT NULL, \n\tadmitted_at FLOAT NOT NULL, \n\tPRIMARY KEY (execution_id, rule), \n\tFOREIGN KEY(execution_id) REFERENCES executions (id)\n)',
    'CREATE INDEX ix_execution_keys_rule_key_admitted_at ON execution_keys (rule, key, admitted_at)',
    'CREATE TABLE impacts (\n\tid SERIAL NOT NULL, \n\texecution_id INTEGER NOT NULL, \n\tplaybook VARCHAR(128) NOT NULL, \n\tkind VARCHAR(32) NOT NULL, \n\tsubject VARCHAR(256) NOT NULL, \n\tvalue FLOAT NOT NULL, \n\tat FLOAT NOT NULL, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(execution_id) REFERENCES executions (id)\n)',
    'CREATE INDEX ix_impacts_kind_at ON impacts (kind, at)',
    'CREATE INDEX ix_impacts_report ON impacts (kind, subject, playbook, at, value)',
    'CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)',
)

# name -> (SQL, fixed parameter values)
GATE_QUERIES: dict[str, tuple[str, dict[str, Any]]] = {
    'count': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.attempt = %(attempt_1)s::INTEGER AND executions.admitted_at >= %(since)s', {'attempt_1': 1}),
    'count_playbook': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.attempt = %(attempt_1)s::INTEGER AND executions.admitted_at >= %(since)s AND executions.playbook = %(playbook)s::VARCHAR', {'attempt_1': 1}),
    'count_alert': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.attempt = %(attempt_1)s::INTEGER AND executions.admitted_at >= %(since)s AND executions.alertname = %(alertname)s::VARCHAR', {'attempt_1': 1}),
    'count_rule': ('SELECT count(*) AS count_1 \nFROM execution_keys \nWHERE execution_keys.rule = %(rule)s::VARCHAR AND execution_keys.key = %(key)s::VARCHAR AND execution_keys.admitted_at >= %(since)s', {}),
    'last_playbook': ('SELECT max(executions.admitted_at) AS max_1 \nFROM executions \nWHERE executions.playbook = %(playbook)s::VARCHAR', {}),
    'last_key': ('SELECT max(executions.admitted_at) AS max_1 \nFROM executions \nWHERE executions.idempotency_key = %(key)s::VARCHAR', {}),
    'outcomes': ('SELECT executions.status, executions.admitted_at, executions.finished_at \nFROM executions \nWHERE executions.playbook = %(playbook)s::VARCHAR AND executions.status IN (%(status_1_1)s::VARCHAR, %(status_1_2)s::VARCHAR, %(status_1_3)s::VARCHAR) ORDER BY executions.admitted_at DESC, executions.id DESC \n LIMIT %(limit)s::INTEGER', {'status_1_1': 'success', 'status_1_2': 'failure', 'status_1_3': 'timeout'}),
    'unfinished': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.playbook = %(playbook)s::VARCHAR AND executions.status IN (%(status_1_1)s::VARCHAR, %(status_1_2)s::VARCHAR)', {'status_1_1': 'queued', 'status_1_2': 'running'}),
    'flag': ('SELECT flags.value \nFROM flags \nWHERE flags.name = %(name)s::VARCHAR', {}),
}
