-- What a PRM buys when choosing among N samples per query (run $run, iteration $iteration, stage $stage),
-- against the baselines that need no PRM:
--   best_of_n        the sample the PRM scores highest is correct
--   weighted_vote    the answer with the largest sum of PRM scores is correct (ties: more votes, then the
--                    smaller answer string)
--   majority_vote    the most frequent answer is correct (ties: the smaller answer string)
--   reward_pass_at_2 a correct sample among the PRM's top 2
--   random_2         a correct sample among 2 drawn at random (seeded by md5(rollout_id:$seed))
--   pass_at_n        any sample correct (the ceiling), and sample_acc the mean sample accuracy
-- and, where the task has a step checker (rollouts.steps_valid), what M-STAR's top-2 selection trains on:
--   top2_faithful    the share of faithful samples (every step true) among the PRM's top 2 correct samples
--   random2_faithful the same among 2 correct samples drawn at random (the same seeded draw)
-- param stage = 'eval'
-- param iteration = 0
-- param seed = 0
WITH s AS (
    SELECT query_id, rollout_id, pred_answer, correct::INT AS ok, prm_score,
           row_number() OVER (PARTITION BY query_id ORDER BY prm_score DESC NULLS LAST, rollout_id) AS prm_rank,
           row_number() OVER (PARTITION BY query_id ORDER BY md5(rollout_id || ':' || $seed)) AS rand_rank
    FROM rollouts
    WHERE run_id = $run AND iteration = $iteration AND stage = $stage AND correct IS NOT NULL
),
votes AS (
    SELECT query_id, pred_answer, max(ok) AS ok, sum(coalesce(prm_score, 0)) AS weight, count(*) AS n
    FROM s WHERE pred_answer IS NOT NULL
    GROUP BY ALL
),
voted AS (
    SELECT query_id,
           max(ok) FILTER (WHERE weighted_rank = 1) AS weighted_ok,
           max(ok) FILTER (WHERE majority_rank = 1) AS majority_ok
    FROM (SELECT *,
                 row_number() OVER (PARTITION BY query_id ORDER BY weight DESC, n DESC, pred_answer) AS weighted_rank,
                 row_number() OVER (PARTITION BY query_id ORDER BY n DESC, pred_answer)              AS majority_rank
          FROM votes)
    GROUP BY query_id
),
correct_checked AS (
    SELECT coalesce(list_bool_and(steps_valid), false)::INT AS faithful,
           row_number() OVER (PARTITION BY query_id ORDER BY prm_score DESC NULLS LAST, rollout_id) AS prm_rank,
           row_number() OVER (PARTITION BY query_id ORDER BY md5(rollout_id || ':' || $seed)) AS rand_rank
    FROM rollouts
    WHERE run_id = $run AND iteration = $iteration AND stage = $stage AND correct AND steps_valid IS NOT NULL
),
faithful AS (
    SELECT avg(faithful) FILTER (WHERE prm_rank <= 2)  AS top2_faithful,
           avg(faithful) FILTER (WHERE rand_rank <= 2) AS random2_faithful
    FROM correct_checked
),
per_query AS (
    SELECT query_id,
           max(ok) FILTER (WHERE prm_rank = 1)  AS best_ok,
           max(ok) FILTER (WHERE prm_rank <= 2) AS rp2_ok,
           max(ok) FILTER (WHERE rand_rank <= 2) AS rand2_ok,
           max(ok)                              AS any_ok,
           avg(ok)                              AS sample_acc,
           count(*)                             AS n,
           count(prm_score)                     AS n_scored
    FROM s
    GROUP BY query_id
)
SELECT count(*)                              AS n_queries,
       max(n)                                AS n_samples,
       sum(n_scored) / sum(n)                AS scored_share,
       avg(best_ok)                          AS best_of_n,
       avg(coalesce(weighted_ok, 0))         AS weighted_vote,
       avg(coalesce(majority_ok, 0))         AS majority_vote,
       avg(rp2_ok)                           AS reward_pass_at_2,
       avg(rand2_ok)                         AS random_2,
       avg(any_ok)                           AS pass_at_n,
       avg(sample_acc)                       AS sample_acc,
       any_value(top2_faithful)              AS top2_faithful,
       any_value(random2_faithful)           AS random2_faithful
FROM per_query LEFT JOIN voted USING (query_id) CROSS JOIN faithful
