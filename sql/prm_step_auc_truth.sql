-- Step-level AUC of a PRM against the truth: how well its step scores rank the steps that are true of the
-- scene (rollouts.steps_valid, from the task's step checker) above those that are not, over run $run's $stage
-- rollouts at $iteration on $split queries. Unlike sql/prm_step_auc.sql this needs no labeller: it measures
-- whether the PRM sees wrong steps, not whether it learnt its labels. NULL without checkable steps.
-- param split = 'val'
-- param stage = 'eval'
-- param iteration = 0
WITH steps AS (
    SELECT unnest(r.steps_valid) AS good, unnest(r.step_scores) AS score
    FROM rollouts AS r
    JOIN queries AS q USING (query_id)
    WHERE r.run_id = $run AND r.iteration = $iteration AND r.stage = $stage AND r.prm = $prm AND q.split = $split
      AND r.step_scores IS NOT NULL AND r.steps_valid IS NOT NULL AND len(r.steps_valid) = len(r.step_scores)
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
