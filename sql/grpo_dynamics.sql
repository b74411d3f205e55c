-- GRPO dynamics per step: the rewards of the step's rollouts (the mean of each reward function, the total's
-- mean and std), the share of groups whose rewards did not vary, completion length, the reflection-word rate
-- (the "aha" curve), and the optimizer side from train_log (loss, lr, clip fraction, KL, entropy; the last
-- of the step's mu optimizer steps).
-- param eps = 0.0001
WITH r AS (
    SELECT run_id, iteration AS step, query_id, reward, rewards, n_tokens, reflection
    FROM rollouts WHERE stage = 'grpo'
), groups AS (
    SELECT run_id, step, query_id, coalesce(stddev_pop(reward), 0) <= $eps AS zero_std FROM r GROUP BY ALL
), per_step AS (
    SELECT run_id, step, count(*) AS n_rollouts, avg(reward) AS reward_mean, stddev_pop(reward) AS reward_std,
           avg(rewards['accuracy']) AS accuracy, avg(rewards['format']) AS format,
           avg(n_tokens) AS mean_len, avg(coalesce(reflection, false)::INT) AS reflection
    FROM r GROUP BY ALL
), zero AS (
    SELECT run_id, step, avg(zero_std::INT) AS frac_zero_std FROM groups GROUP BY ALL
), opt AS (
    SELECT run_id, iteration AS step, max_by({'loss': loss, 'lr': lr, 'clip_frac': clip_frac, 'kl': kl,
                                              'entropy': entropy}, step) AS o
    FROM train_log GROUP BY ALL
)
SELECT p.run_id, p.step, p.n_rollouts, p.reward_mean, p.reward_std, p.accuracy, p.format, z.frac_zero_std,
       p.mean_len, p.reflection, o.o.loss AS loss, o.o.lr AS lr, o.o.clip_frac AS clip_frac, o.o.kl AS kl,
       o.o.entropy AS entropy
FROM per_step p JOIN zero z USING (run_id, step) LEFT JOIN opt o USING (run_id, step)
ORDER BY p.run_id, p.step
