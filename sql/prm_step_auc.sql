-- Step-level AUC of a PRM: how well its step scores (rollouts.step_scores, written by `mstar prm score`)
-- rank the $labeller hard labels of run $run's $stage rollouts on $split queries (held out from PRM training).
-- The Mann-Whitney form: the chance a labelled-good step outscores a labelled-bad one, ties counting half.
-- Against the truth rather than a labeller: sql/prm_step_auc_truth.sql.
-- param labeller = 'mc'
-- param split = 'val'
-- param stage = 'eval'
-- param iteration = 0
WITH steps AS (
    SELECT l.hard_label AS good, r.step_scores[l.step_idx + 1] AS score
    FROM step_labels AS l
    JOIN rollouts AS r USING (rollout_id)
    JOIN queries AS q USING (query_id)
    WHERE r.run_id = $run AND r.iteration = $iteration AND r.stage = $stage AND r.prm = $prm AND q.split = $split
      AND r.step_scores IS NOT NULL AND l.step_idx < len(r.step_scores)
      AND coalesce(l.labeller, 'mc') = $labeller
),
ranked AS (
    SELECT good, rank() OVER (ORDER BY score) + (count(*) OVER (PARTITION BY score) - 1) / 2.0 AS avg_rank
    FROM steps
)
SELECT count(*)                                   AS n_steps,
       count(*) FILTER (WHERE good)               AS n_good,
       (sum(avg_rank) FILTER (WHERE good) - count(*) FILTER (WHERE good) * (count(*) FILTER (WHERE good) + 1) / 2.0)
       / nullif(count(*) FILTER (WHERE good) * count(*) FILTER (WHERE NOT good), 0) AS step_auc
FROM ranked
