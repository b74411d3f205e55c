-- Training dynamics per run, iteration and stage. Greedy rows are those sampled at temperature 0; the rest are
-- samples (greedy and samples share a stage). Pass@K: a correct response among the $k samples with the lowest
-- sample_idx. Reward-Pass@2: a correct response among the two samples the PRM ranks highest (ties broken by
-- rollout_id; NULL without PRM scores). Reflection: the share of samples flagged rollouts.reflection when they
-- were written. Faithful reasoning (tasks with a step checker, rollouts.steps_valid): faithful_rate is the
-- share of correct samples whose every step is true, greedy_faithful_rate the same for the correct greedy
-- responses, step_valid_rate the share of true steps over all samples; NULL where nothing was checked. One hash aggregation over narrow columns (top-N aggregates, no sort): the response text is
-- never read. Where the run mixed in unlabelled queries, every row of an iteration also carries that
-- iteration's pseudo-label quality (sql/pseudo_label_accuracy.sql: how many, labelled share, accuracy against
-- the held-aside answers); unlabelled rollouts have no gold verdict, so nothing else counts them.
-- param k = 4
WITH per_query AS (
    SELECT run_id, iteration, stage, query_id,
           max(correct::INT) FILTER (WHERE temperature = 0)                                       AS greedy,
           list_max(min_by(correct::INT, sample_idx, $k) FILTER (WHERE temperature > 0))         AS pass_k,
           list_max(max_by(correct::INT, {'s': prm_score, 'id': rollout_id}, 2)
                    FILTER (WHERE temperature > 0 AND prm_score IS NOT NULL))                    AS reward_pass_2,
           avg(n_tokens) FILTER (WHERE temperature > 0)                                          AS mean_len,
           avg(coalesce(reflection, false)::INT) FILTER (WHERE temperature > 0)                   AS reflection,
           avg(correct::INT) FILTER (WHERE temperature > 0)                                      AS sample_acc,
           max(temperature) FILTER (WHERE temperature > 0)                                       AS temperature,
           count(*) FILTER (WHERE temperature > 0 AND correct AND steps_valid IS NOT NULL)       AS n_checked,
           count(*) FILTER (WHERE temperature > 0 AND correct AND steps_valid IS NOT NULL
                            AND coalesce(list_bool_and(steps_valid), false))                     AS n_faithful,
           count(*) FILTER (WHERE temperature = 0 AND correct AND steps_valid IS NOT NULL)       AS n_greedy_checked,
           count(*) FILTER (WHERE temperature = 0 AND correct AND steps_valid IS NOT NULL
                            AND coalesce(list_bool_and(steps_valid), false))                     AS n_greedy_faithful,
           sum(list_sum(steps_valid::INT[])) FILTER (WHERE temperature > 0)                     AS n_valid_steps,
           sum(len(steps_valid)) FILTER (WHERE temperature > 0)                                  AS n_checked_steps
    FROM rollouts
    WHERE correct IS NOT NULL
    GROUP BY ALL
),
stages AS (
    SELECT run_id, iteration, stage,
           count(*)                          AS n_queries,
           avg(greedy)                       AS greedy_acc,
           $k                                AS k,
           avg(pass_k)                       AS pass_at_k,
           avg(pass_k) - avg(greedy)         AS pass_at_k_minus_greedy,
           avg(reward_pass_2)                AS reward_pass_at_2,
           avg(sample_acc)                   AS sample_acc,
           avg(mean_len)                     AS mean_len,
           avg(reflection)                   AS reflection_share,
           max(temperature)                  AS temperature,
           sum(n_faithful) / nullif(sum(n_checked), 0)               AS faithful_rate,
           sum(n_greedy_faithful) / nullif(sum(n_greedy_checked), 0) AS greedy_faithful_rate,
           sum(n_valid_steps) / nullif(sum(n_checked_steps), 0)      AS step_valid_rate
    FROM per_query
    GROUP BY ALL
)
SELECT s.*, p.n_unlabeled, p.pseudo_label_coverage, p.pseudo_label_acc
FROM stages AS s
LEFT JOIN pseudo_label_accuracy AS p USING (run_id, iteration)
ORDER BY run_id, iteration, stage
