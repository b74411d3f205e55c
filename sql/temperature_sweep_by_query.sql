-- The temperature search on val, one row per (temperature, query): did any of the first $k samples answer
-- right (pass_k), did a right answer rank in the PRM's top 2 (reward_pass_2; NULL without PRM scores), and the
-- mean sample accuracy. The loop's paired bootstrap resamples these rows by query (loop/temperature.py).
-- param stage = 'temp-sweep'
-- param k = 4
WITH ranked AS (
    SELECT query_id, temperature, correct, prm_score,
           row_number() OVER (PARTITION BY query_id, temperature ORDER BY sample_idx) AS sample_rank,
           row_number() OVER (PARTITION BY query_id, temperature
                              ORDER BY prm_score DESC NULLS LAST, md5(rollout_id)) AS prm_rank
    FROM rollouts
    WHERE run_id = $run AND iteration = $iteration AND stage = $stage AND correct IS NOT NULL
)
SELECT round(temperature, 4) AS temperature, query_id,
       max(CASE WHEN sample_rank <= $k THEN correct::INT END)                               AS pass_k,
       max(CASE WHEN prm_rank <= 2 AND prm_score IS NOT NULL THEN correct::INT END)           AS reward_pass_2,
       avg(correct::INT)                                                                     AS sample_acc
FROM ranked
GROUP BY ALL
ORDER BY temperature, query_id
