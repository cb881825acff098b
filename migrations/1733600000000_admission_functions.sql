-- Up Migration

-- Admission in one round trip: taking a slot and reserving tokens were transactions of six to eight
-- statements each, three times per task. As functions they run in the statement's own transaction,
-- under the same advisory locks as before (workers of both versions can run side by side).

-- Takes one of p_limit slots of p_kind for p_holder, or queues it (see acquireSlot in activities/governance.ts).
CREATE FUNCTION acquire_slot(p_kind text, p_holder text, p_priority int, p_limit int, p_lease_ms int, p_stale_seconds int)
RETURNS TABLE (granted boolean, ahead int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_held int;
  v_ahead int;
  v_since timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('governance:slot:' || p_kind));
  UPDATE slot_leases SET released_at = expires_at
   WHERE kind = p_kind AND released_at IS NULL AND expires_at < clock_timestamp();
  UPDATE slot_leases SET expires_at = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0)
   WHERE kind = p_kind AND holder = p_holder AND released_at IS NULL;
  IF FOUND THEN
    -- A holder asking again (its next goal) yields when every slot is taken and someone more urgent waits.
    SELECT count(*) INTO v_held FROM slot_leases WHERE kind = p_kind AND released_at IS NULL;
    SELECT count(*) INTO v_ahead FROM slot_waiters
     WHERE kind = p_kind AND priority > p_priority AND seen_at > clock_timestamp() - make_interval(secs => p_stale_seconds);
    IF v_held < p_limit OR v_ahead = 0 THEN
      RETURN QUERY SELECT true, 0;
      RETURN;
    END IF;
    UPDATE slot_leases SET released_at = clock_timestamp() WHERE kind = p_kind AND holder = p_holder AND released_at IS NULL;
  END IF;
  DELETE FROM slot_waiters WHERE kind = p_kind AND seen_at < clock_timestamp() - make_interval(secs => p_stale_seconds);
  -- Waiters ahead: higher priority, or the same priority waiting longer (a newcomer waits from now).
  SELECT since INTO v_since FROM slot_waiters WHERE kind = p_kind AND holder = p_holder;
  SELECT count(*) INTO v_held FROM slot_leases WHERE kind = p_kind AND released_at IS NULL;
  SELECT count(*) INTO v_ahead FROM slot_waiters
   WHERE kind = p_kind AND holder <> p_holder
     AND (priority > p_priority OR (priority = p_priority AND since < COALESCE(v_since, clock_timestamp())));
  IF p_limit - v_held <= v_ahead THEN
    INSERT INTO slot_waiters (kind, holder, priority) VALUES (p_kind, p_holder, p_priority)
    ON CONFLICT (kind, holder) DO UPDATE SET seen_at = clock_timestamp(), priority = EXCLUDED.priority;
    RETURN QUERY SELECT false, v_ahead;
    RETURN;
  END IF;
  IF v_since IS NOT NULL THEN
    DELETE FROM slot_waiters WHERE kind = p_kind AND holder = p_holder;
  END IF;
  INSERT INTO slot_leases (kind, holder, priority, expires_at)
  VALUES (p_kind, p_holder, p_priority, clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0));
  RETURN QUERY SELECT true, 0;
END
$$;

-- Reserves p_estimate tokens when every budget that applies (global, and the org's and the agent's when
-- not null) has room in the window; true when reserved, or already reserved under p_id (a retry). False
-- says only "not now": activities/governance.ts then works out how long to wait.
CREATE FUNCTION reserve_tokens(
  p_id text, p_org_id text, p_agent_id text, p_task_id text, p_purpose text, p_estimate int, p_window_seconds int,
  p_global_limit bigint, p_org_limit bigint, p_agent_limit bigint
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_since timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('governance:tokens'));
  IF EXISTS (SELECT 1 FROM token_ledger WHERE id = p_id) THEN
    RETURN true;
  END IF;
  v_since := clock_timestamp() - make_interval(secs => p_window_seconds);
  -- A call larger than a whole budget can never fit: it may run alone in an empty window.
  IF (SELECT COALESCE(sum(tokens), 0) FROM token_ledger WHERE reserved_at > v_since)
       + LEAST(p_estimate, p_global_limit) > p_global_limit THEN
    RETURN false;
  END IF;
  IF p_org_limit IS NOT NULL AND (SELECT COALESCE(sum(tokens), 0) FROM token_ledger WHERE reserved_at > v_since AND org_id = p_org_id)
       + LEAST(p_estimate, p_org_limit) > p_org_limit THEN
    RETURN false;
  END IF;
  IF p_agent_limit IS NOT NULL AND (SELECT COALESCE(sum(tokens), 0) FROM token_ledger WHERE reserved_at > v_since AND agent_id = p_agent_id)
       + LEAST(p_estimate, p_agent_limit) > p_agent_limit THEN
    RETURN false;
  END IF;
  INSERT INTO token_ledger (id, org_id, agent_id, task_id, purpose, estimate, tokens)
  VALUES (p_id, p_org_id, p_agent_id, p_task_id, p_purpose, p_estimate, p_estimate);
  RETURN true;
END
$$;

-- Down Migration
DROP FUNCTION reserve_tokens(text, text, text, text, text, int, int, bigint, bigint, bigint);
DROP FUNCTION acquire_slot(text, text, int, int, int, int);
