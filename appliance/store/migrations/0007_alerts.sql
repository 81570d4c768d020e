-- 0007_alerts: acknowledgements of anomaly alerts (appliance/auditlog).
-- Forward-only: never edit a migration that has shipped; add a new file.
--
-- The alerts themselves are the anomaly.alert entries of the audit log; an
-- acknowledgement says who saw one and when, and points at its own
-- alert.ack audit entry. One per alert: the primary key refuses a second.
CREATE TABLE alert_acks (
    alert_seq INTEGER PRIMARY KEY,   -- seq of the anomaly.alert audit entry
    tenant    TEXT NOT NULL,         -- the alert's tenant ('' appliance-wide)
    acked_by  TEXT NOT NULL,         -- user id
    acked_at  TEXT NOT NULL,         -- RFC 3339 UTC
    ack_seq   INTEGER NOT NULL       -- seq of the alert.ack audit entry
) STRICT;
