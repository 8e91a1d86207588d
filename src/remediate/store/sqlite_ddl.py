# ruff: noqa: E501
"""The SQLite schema at SCHEMA_HEAD, the gate's queries and what the rows it queues
take from column defaults, rendered from tables.py and store.py by
`python -m remediate.store.schema` (tests/unit/test_schema.py keeps them equal).
With them `remediate serve` starts, answers /health and decides alerts on SQLite
without importing SQLAlchemy.
"""

from typing import Any

STATEMENTS = (
    'CREATE TABLE chain_runs (\n\tid INTEGER NOT NULL, \n\tchain VARCHAR(128) NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tstarted_at FLOAT NOT NULL, \n\tfinished_at FLOAT, \n\tstatus VARCHAR(16) NOT NULL, \n\tspec JSON NOT NULL, \n\towner VARCHAR(128), \n\tlease_expires_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE flags (\n\tname VARCHAR(64) NOT NULL, \n\tvalue JSON NOT NULL, \n\tupdated_at FLOAT NOT NULL, \n\tPRIMARY KEY (name)\n)',
    'CREATE TABLE forecasts (\n\tid INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tresource VARCHAR(256) NOT NULL, \n\tcurrent FLOAT NOT NULL, \n\ttrend_per_day FLOAT NOT NULL, \n\thorizon_at FLOAT NOT NULL, \n\tpredicted FLOAT NOT NULL, \n\tseconds_to_full FLOAT, \n\tseverity VARCHAR(16) NOT NULL, \n\tconfidence FLOAT NOT NULL, \n\tscored_at FLOAT, \n\tactual FLOAT, \n\tscore FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_forecasts_resource_created_at ON forecasts (resource, created_at)',
    'CREATE TABLE leases (\n\t"key" VARCHAR(400) NOT NULL, \n\texecution_id INTEGER NOT NULL, \n\towner VARCHAR(128) NOT NULL, \n\tacquired_at FLOAT NOT NULL, \n\texpires_at FLOAT NOT NULL, \n\tPRIMARY KEY ("key")\n)',
    'CREATE TABLE observations (\n\tid INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tcycle VARCHAR(32) NOT NULL, \n\tkind VARCHAR(32) NOT NULL, \n\tresource VARCHAR(256) NOT NULL, \n\tseverity VARCHAR(16) NOT NULL, \n\tconfidence FLOAT NOT NULL, \n\tsummary TEXT NOT NULL, \n\tdecision VARCHAR(16) NOT NULL, \n\treason TEXT NOT NULL, \n\tplaybook VARCHAR(128), \n\tdecision_id INTEGER, \n\tdata JSON, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_observations_created_at ON observations (created_at)',
    'CREATE INDEX ix_observations_cycle ON observations (cycle)',
    'CREATE TABLE requests (\n\tid INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tplaybook VARCHAR(128), \n\tchain VARCHAR(128), \n\tparameters JSON NOT NULL, \n\talertname VARCHAR(256), \n\tfingerprint VARCHAR(128), \n\tlabels JSON, \n\tannotations JSON, \n\talert_starts_at FLOAT, \n\talert_ends_at FLOAT, \n\tconfidence FLOAT NOT NULL, \n\tforced BOOLEAN NOT NULL, \n\tdry_run BOOLEAN NOT NULL, \n\tchain_run_id INTEGER, \n\ttimeout_seconds FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_requests_resolved ON requests (fingerprint, alert_starts_at, alert_ends_at, created_at) WHERE alert_ends_at IS NOT NULL',
    'CREATE TABLE samples (\n\tid INTEGER NOT NULL, \n\tat FLOAT NOT NULL, \n\tresource VARCHAR(256) NOT NULL, \n\tused FLOAT NOT NULL, \n\tcapacity FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX ix_samples_at ON samples (at)',
    'CREATE INDEX ix_samples_resource_at ON samples (resource, at)',
    'CREATE TABLE chain_steps (\n\trun_id INTEGER NOT NULL, \n\tposition INTEGER NOT NULL, \n\tplaybook VARCHAR(128) NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\texecution_id INTEGER, \n\tstarted_at FLOAT, \n\tfinished_at FLOAT, \n\tdetail TEXT, \n\tPRIMARY KEY (run_id, position), \n\tFOREIGN KEY(run_id) REFERENCES chain_runs (id)\n)',
    'CREATE TABLE decisions (\n\tid INTEGER NOT NULL, \n\trequest_id INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tplaybook VARCHAR(128), \n\talertname VARCHAR(256), \n\ttarget VARCHAR(256), \n\taction VARCHAR(16) NOT NULL, \n\tcheck_name VARCHAR(32), \n\treason TEXT NOT NULL, \n\tconfidence FLOAT NOT NULL, \n\tforced BOOLEAN NOT NULL, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(request_id) REFERENCES requests (id)\n)',
    'CREATE INDEX ix_decisions_action_created_at ON decisions (action, created_at)',
    'CREATE INDEX ix_decisions_created_at ON decisions (created_at)',
    "CREATE INDEX ix_decisions_refusals ON decisions (action, created_at, check_name, playbook, reason) WHERE action IN ('block', 'escalate')",
    'CREATE INDEX ix_decisions_request_id ON decisions (request_id)',
    'CREATE TABLE approvals (\n\tid INTEGER NOT NULL, \n\tdecision_id INTEGER NOT NULL, \n\trequest_id INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\texpires_at FLOAT NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\tdecided_at FLOAT, \n\tdecided_by VARCHAR(128), \n\tnote TEXT, \n\toutcome_decision_id INTEGER, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(decision_id) REFERENCES decisions (id), \n\tFOREIGN KEY(request_id) REFERENCES requests (id)\n)',
    'CREATE INDEX ix_approvals_status ON approvals (status)',
    'CREATE TABLE executions (\n\tid INTEGER NOT NULL, \n\tdecision_id INTEGER NOT NULL, \n\tattempt INTEGER NOT NULL, \n\tplaybook VARCHAR(128) NOT NULL, \n\ttarget VARCHAR(256) NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\talertname VARCHAR(256), \n\tidempotency_key VARCHAR(512), \n\tforced BOOLEAN NOT NULL, \n\tadmitted_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tfinished_at FLOAT, \n\tstatus VARCHAR(16) NOT NULL, \n\tduration_seconds FLOAT, \n\troot_cause VARCHAR(64), \n\tsummary TEXT, \n\tstdout TEXT, \n\tstderr TEXT, \n\tactions JSON, \n\tdetails JSON, \n\tlease_owner VARCHAR(128), \n\tlease_expires_at FLOAT, \n\tfingerprint VARCHAR(128), \n\talert_starts_at FLOAT, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(decision_id) REFERENCES decisions (id)\n)',
    'CREATE INDEX ix_executions_admitted_at ON executions (admitted_at)',
    'CREATE INDEX ix_executions_alertname_admitted_at ON executions (alertname, admitted_at)',
    'CREATE INDEX ix_executions_idempotency_key_admitted_at ON executions (idempotency_key, admitted_at)',
    'CREATE INDEX ix_executions_playbook_admitted_at ON executions (playbook, admitted_at)',
    'CREATE INDEX ix_executions_report_runs ON executions (playbook, source, status, admitted_at, attempt, duration_seconds)',
    'CREATE INDEX ix_executions_root_cause ON executions (root_cause, admitted_at, attempt, status) WHERE root_cause IS NOT NULL',
    'CREATE INDEX ix_executions_status ON executions (status)',
    'CREATE TABLE execution_keys (\n\texecution_id INTEGER NOT NULL, \n\trule VARCHAR(128) NOT NULL, \n\t"key" VARCHAR(512) NOT NULL, \n\tadmitted_at FLOAT NOT NULL, \n\tPRIMARY KEY (execution_id, rule), \n\tFOREIGN KEY(execution_id) REFERENCES executions (id)\n)',
    'CREATE INDEX ix_execution_keys_rule_key_admitted_at ON execution_keys (rule, "key", admitted_at)',
    'CREATE TABLE impacts (\n\tid INTEGER NOT NULL, \n\texecution_id INTEGER NOT NULL, \n\tplaybook VARCHAR(128) NOT NULL, \n\tkind VARCHAR(32) NOT NULL, \n\tsubject VARCHAR(256) NOT NULL, \n\tvalue FLOAT NOT NULL, \n\tat FLOAT NOT NULL, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(execution_id) REFERENCES executions (id)\n)',
    'CREATE INDEX ix_impacts_kind_at ON impacts (kind, at)',
    'CREATE INDEX ix_impacts_report ON impacts (kind, subject, playbook, at, value)',
    'CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)',
)

# name -> (SQL, parameter order, fixed parameter values)
GATE_QUERIES: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    'count': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.attempt = ? AND executions.admitted_at >= ?', ('attempt_1', 'since'), {'attempt_1': 1, 'since': 0.0}),
    'count_playbook': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.attempt = ? AND executions.admitted_at >= ? AND executions.playbook = ?', ('attempt_1', 'since', 'playbook'), {'attempt_1': 1, 'since': 0.0, 'playbook': ''}),
    'count_alert': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.attempt = ? AND executions.admitted_at >= ? AND executions.alertname = ?', ('attempt_1', 'since', 'alertname'), {'attempt_1': 1, 'since': 0.0, 'alertname': ''}),
    'count_rule': ('SELECT count(*) AS count_1 \nFROM execution_keys \nWHERE execution_keys.rule = ? AND execution_keys."key" = ? AND execution_keys.admitted_at >= ?', ('rule', 'key', 'since'), {'rule': '', 'key': '', 'since': 0.0}),
    'last_playbook': ('SELECT max(executions.admitted_at) AS max_1 \nFROM executions \nWHERE executions.playbook = ?', ('playbook',), {'playbook': ''}),
    'last_key': ('SELECT max(executions.admitted_at) AS max_1 \nFROM executions \nWHERE executions.idempotency_key = ?', ('key',), {'key': ''}),
    'outcomes': ('SELECT executions.status, executions.admitted_at, executions.finished_at \nFROM executions \nWHERE executions.playbook = ? AND executions.status IN (?, ?, ?) ORDER BY executions.admitted_at DESC, executions.id DESC\n LIMIT ? OFFSET ?', ('playbook', 'status_1_1', 'status_1_2', 'status_1_3', 'limit', 'param_1'), {'playbook': '', 'limit': 0, 'param_1': 0, 'status_1_1': 'success', 'status_1_2': 'failure', 'status_1_3': 'timeout'}),
    'unfinished': ('SELECT count(*) AS count_1 \nFROM executions \nWHERE executions.playbook = ? AND executions.status IN (?, ?)', ('playbook', 'status_1_1', 'status_1_2'), {'playbook': '', 'status_1_1': 'queued', 'status_1_2': 'running'}),
    'flag': ('SELECT flags.value \nFROM flags \nWHERE flags.name = ?', ('name',), {'name': ''}),
}

# table -> (columns, JSON columns, boolean columns, column defaults)
COLUMNS: dict[str, tuple[tuple[Any, ...], ...]] = {
    'approvals': (('id', 'decision_id', 'request_id', 'created_at', 'expires_at', 'status', 'decided_at', 'decided_by', 'note', 'outcome_decision_id'), (), (), ()),
    'chain_runs': (('id', 'chain', 'source', 'started_at', 'finished_at', 'status', 'spec', 'owner', 'lease_expires_at'), ('spec',), (), ()),
    'chain_steps': (('run_id', 'position', 'playbook', 'status', 'execution_id', 'started_at', 'finished_at', 'detail'), (), (), ()),
    'decisions': (('id', 'request_id', 'created_at', 'source', 'playbook', 'alertname', 'target', 'action', 'check_name', 'reason', 'confidence', 'forced'), (), ('forced',), (('reason', ''), ('forced', False))),
    'execution_keys': (('execution_id', 'rule', 'key', 'admitted_at'), (), (), ()),
    'executions': (('id', 'decision_id', 'attempt', 'playbook', 'target', 'source', 'alertname', 'idempotency_key', 'forced', 'admitted_at', 'started_at', 'finished_at', 'status', 'duration_seconds', 'root_cause', 'summary', 'stdout', 'stderr', 'actions', 'details', 'lease_owner', 'lease_expires_at', 'fingerprint', 'alert_starts_at'), ('actions', 'details'), ('forced',), (('attempt', 1), ('forced', False))),
    'flags': (('name', 'value', 'updated_at'), ('value',), (), ()),
    'forecasts': (('id', 'created_at', 'resource', 'current', 'trend_per_day', 'horizon_at', 'predicted', 'seconds_to_full', 'severity', 'confidence', 'scored_at', 'actual', 'score'), (), (), ()),
    'impacts': (('id', 'execution_id', 'playbook', 'kind', 'subject', 'value', 'at'), (), (), (('subject', ''),)),
    'leases': (('key', 'execution_id', 'owner', 'acquired_at', 'expires_at'), (), (), ()),
    'observations': (('id', 'created_at', 'cycle', 'kind', 'resource', 'severity', 'confidence', 'summary', 'decision', 'reason', 'playbook', 'decision_id', 'data'), ('data',), (), (('summary', ''), ('reason', ''))),
    'requests': (('id', 'created_at', 'source', 'playbook', 'chain', 'parameters', 'alertname', 'fingerprint', 'labels', 'annotations', 'alert_starts_at', 'alert_ends_at', 'confidence', 'forced', 'dry_run', 'chain_run_id', 'timeout_seconds'), ('parameters', 'labels', 'annotations'), ('forced', 'dry_run'), (('parameters', '{}'), ('forced', False), ('dry_run', False))),
    'samples': (('id', 'at', 'resource', 'used', 'capacity'), (), (), ()),
}
