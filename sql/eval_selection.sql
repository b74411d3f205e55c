-- Test-time selection over one evaluation's samples (`mstar eval`): one row per query, method and K with the
-- answer the method picks and whether it is correct. Run $run, iteration $iteration; the samples are the
-- stage $stage rollouts sampled at T > 0 with sample_idx 1..$n, the greedy answer is sample 0 at T = 0.
--   greedy         the greedy decode (K = 1)
--   majority       the most frequent answer among the first K samples, for every K in 1..N (ties: the smaller
--                  answer string); a query whose K samples extracted no answer has no row (counted wrong)
--   weighted-vote  the answer with the largest sum of scores by PRM $prm over the N samples (ties: more votes,
--                  then the smaller string); only where that PRM scored the samples
--   prm-best-of-n  the sample that PRM scores highest (ties: rollout_id)
--   self-select    the policy's own pick among K candidates (stage $select_stage, sample_idx = K)
-- param stage = 'eval'
-- param select_stage = 'eval-select'
-- param prm = NULL
WITH s AS (
    SELECT query_id, rollout_id, sample_idx, pred_answer, correct::INT AS ok, temperature,
           CASE WHEN prm = $prm THEN prm_score END AS score
    FROM rollouts
    WHERE run_id = $run AND iteration = $iteration AND stage = $stage AND correct IS NOT NULL
      AND sample_idx <= $n
),
samples AS (
    SELECT *, row_number() OVER (PARTITION BY query_id ORDER BY sample_idx) AS pos
    FROM s WHERE temperature > 0
),
ks AS (SELECT DISTINCT pos AS k FROM samples),
votes AS (
    SELECT ks.k, x.query_id, x.pred_answer, max(x.ok) AS ok, count(*) AS n_votes
    FROM ks JOIN samples AS x ON x.pos <= ks.k
    WHERE x.pred_answer IS NOT NULL
    GROUP BY ALL
),
n_per AS (SELECT query_id, count(*) AS n FROM samples GROUP BY query_id),
weighted AS (
    SELECT query_id, pred_answer, max(ok) AS ok, sum(score) AS weight, count(*) AS n_votes
    FROM samples
    WHERE pred_answer IS NOT NULL AND score IS NOT NULL
    GROUP BY ALL
)
SELECT query_id, 'greedy' AS method, 1 AS k, pred_answer, ok AS correct
FROM s WHERE temperature = 0
UNION ALL
SELECT query_id, 'majority', k, pred_answer, ok
FROM votes
QUALIFY row_number() OVER (PARTITION BY query_id, k ORDER BY n_votes DESC, pred_answer) = 1
UNION ALL
SELECT query_id, 'weighted-vote', n, pred_answer, ok
FROM weighted JOIN n_per USING (query_id)
QUALIFY row_number() OVER (PARTITION BY query_id ORDER BY weight DESC, n_votes DESC, pred_answer) = 1
UNION ALL
SELECT query_id, 'prm-best-of-n', n, pred_answer, ok
FROM samples JOIN n_per USING (query_id)
WHERE score IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY query_id ORDER BY score DESC, rollout_id) = 1
UNION ALL
SELECT query_id, 'self-select', sample_idx, pred_answer, correct::INT
FROM rollouts
WHERE run_id = $run AND iteration = $iteration AND stage = $select_stage AND correct IS NOT NULL
ORDER BY method, k, query_id
