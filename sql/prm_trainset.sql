-- PRM training data: the step-labelled rollouts of run $run on $split queries, one row per response with its
-- steps and per-step labels in step order (hard: any MC continuation correct; soft: the fraction correct).
-- Only responses whose every step has a label from $labeller (mc, judge or task; NULL in an older store means
-- mc). MC continuations themselves (stage mc) are not examples.
-- param split = 'train'
-- param labeller = 'mc'
WITH labels AS (
    SELECT rollout_id,
           list(hard_label ORDER BY step_idx) AS hard_labels,
           list(soft_label ORDER BY step_idx) AS soft_labels,
           count(*)                           AS n_labels
    FROM step_labels
    WHERE coalesce(labeller, 'mc') = $labeller AND hard_label IS NOT NULL  -- NULL: a verdict that could not be read
    GROUP BY rollout_id
)
SELECT r.rollout_id, r.query_id, r.steps, l.hard_labels, l.soft_labels
FROM rollouts AS r
JOIN labels AS l USING (rollout_id)
JOIN queries AS q USING (query_id)
WHERE r.run_id = $run AND r.stage <> 'mc' AND q.split = $split AND l.n_labels = len(r.steps)
ORDER BY r.rollout_id
