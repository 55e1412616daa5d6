-- Fair and prioritised dispatch (issue 22, items 1 and 2). The relay hands a queue's waiting
-- jobs to the transport by priority, then by fair key: within a priority, tenants with work
-- waiting take turns, so one practice's backlog never holds back another's next job.

-- Whose work it is: the practice (today a practitioner's account) or the account the job
-- serves. NULL for the system's own jobs (scheduler ticks, mail answers to anonymous
-- requests).
ALTER TABLE jobs ADD COLUMN tenant TEXT;
-- 0 goes first, 9 last. Kinds declare their default (work someone waits for: 1; batch: 8);
-- an admin may change it; a job waiting longer than JOB_PRIORITY_AGING is raised to 1.
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 5;
-- Start-time fair queueing: a job's place among the waiting work of its priority, on a
-- virtual clock per queue (see queue_tenants and queue_clocks).
ALTER TABLE jobs ADD COLUMN fair_key BIGINT NOT NULL DEFAULT 0;

-- The relay walks a queue's undispatched jobs of one state in the order it hands them over.
DROP INDEX jobs_dispatch;
CREATE INDEX jobs_dispatch ON jobs (queue, state, dispatched_at, priority, fair_key);

-- Per queue, priority and tenant, the fair key of the tenant's latest job: its next job of that
-- priority is placed one turn after it, or at the clock if the tenant has fallen behind (idle
-- for a while), so a tenant never saves up turns. Each priority keeps its own timeline: a
-- tenant's deep backlog of housekeeping does not push back its next interactive job, and an
-- interactive job does not move the housekeeping clock. The system's jobs use the tenant ''.
CREATE TABLE queue_tenants (
    queue TEXT NOT NULL,
    priority BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    last_key BIGINT NOT NULL,
    PRIMARY KEY (queue, priority, tenant)
);

-- Per queue and priority, the highest fair key handed to the transport: the virtual clock new
-- tenants start from.
CREATE TABLE queue_clocks (
    queue TEXT NOT NULL,
    priority BIGINT NOT NULL,
    virtual_now BIGINT NOT NULL,
    PRIMARY KEY (queue, priority)
);
