-- A draft is confirmed into one mission (issue 20): a second confirmation answers 409 instead
-- of making a second mission. Drafts confirmed twice before keep both missions; only the later
-- ones lose their link to the draft, so the index can hold.
UPDATE missions SET draft_id = NULL
WHERE draft_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM missions AS earlier
    WHERE earlier.draft_id = missions.draft_id
      AND (earlier.created_at < missions.created_at
           OR (earlier.created_at = missions.created_at AND earlier.id < missions.id))
);
CREATE UNIQUE INDEX missions_one_per_draft ON missions (draft_id) WHERE draft_id IS NOT NULL;
