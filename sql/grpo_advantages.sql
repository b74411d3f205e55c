-- GRPO advantages of one step: each rollout's total reward against its group (the G samples of one query at
-- this step). scale = 'group': (r - group mean) / (group std + eps); 'batch': divided by the std of the whole
-- step instead; 'none': r - group mean. A group whose rewards do not vary gets advantage 0 (zero_std), and so
-- does a rollout whose reward is null (not scorable); null rewards are left out of the group's mean and std.
-- Standard deviations are population ones (over the G samples), as in the GRPO paper's normalisation.
-- param scale = 'group'
-- param eps = 0.0001
WITH step AS (
    SELECT rollout_id, query_id, sample_idx, reward
    FROM rollouts
    WHERE run_id = $run AND iteration = $step AND stage = 'grpo'
), groups AS (
    SELECT query_id, avg(reward) AS group_mean, coalesce(stddev_pop(reward), 0) AS group_std,
           count(reward) AS n_scored
    FROM step GROUP BY query_id
), batch AS (
    SELECT coalesce(stddev_pop(reward), 0) AS batch_std FROM step
)
SELECT s.rollout_id, s.query_id, s.sample_idx, s.reward, g.group_mean, g.group_std,
       g.group_std <= $eps AS zero_std,
       CASE WHEN s.reward IS NULL OR g.group_std <= $eps THEN 0.0
            WHEN $scale = 'group' THEN (s.reward - g.group_mean) / (g.group_std + $eps)
            WHEN $scale = 'batch' THEN (s.reward - g.group_mean) / (b.batch_std + $eps)
            ELSE s.reward - g.group_mean END AS advantage
FROM step s JOIN groups g USING (query_id) CROSS JOIN batch b
ORDER BY s.query_id, s.sample_idx
