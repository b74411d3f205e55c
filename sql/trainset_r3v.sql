-- R3V (self-reflection): self-CoT, self-refine and self-select examples from the pool of every iteration so far.
-- The pool is this run's well-formed `$stage` rollouts of iterations <= $iteration, one per distinct response text,
-- judged by their gold verdict or, for an unlabelled query, by its pseudo-label (docs/unlabeled.md).
--   cot     a correct rationale is the target; up to $k per query
--   refine  a wrong rationale is shown, a correct one is the target; up to $refine_k per query with both kinds
--   select  3 numbered candidates (2 right + 1 wrong, or 1 right + 2 wrong), shuffled by md5(id:seed:j); the
--           target is the correct final answer; up to $select_k per query with both kinds and 3 distinct texts
-- Every draw is seeded: the same store, run, iteration and seed give the same rows.
-- param stage = 'explore'
-- param k = 4
-- param refine_k = 2
-- param select_k = 1
-- param seed = 0
WITH pool AS (
    SELECT rollout_id, query_id, response, pred_answer, coalesce(correct, pseudo_correct) AS correct
    FROM rollouts
    WHERE run_id = $run AND iteration <= $iteration AND stage = $stage AND format_ok = true
      AND coalesce(correct, pseudo_correct) IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY query_id, response ORDER BY iteration, sample_idx, rollout_id) = 1
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY query_id, correct ORDER BY md5(rollout_id || ':' || $seed)) AS r,
           count(*) OVER (PARTITION BY query_id, correct) AS n_same
    FROM pool
),
cot AS (
    SELECT 'cot' AS kind, query_id, r AS j, rollout_id, response, [] :: VARCHAR[] AS context,
           NULL :: VARCHAR AS answer, NULL :: INTEGER AS pick
    FROM ranked WHERE correct AND r <= $k
),
refine AS (
    SELECT 'refine' AS kind, w.query_id, w.r AS j, c.rollout_id, c.response, [w.response] AS context,
           NULL :: VARCHAR AS answer, NULL :: INTEGER AS pick
    FROM ranked w JOIN ranked c
      ON c.query_id = w.query_id AND c.correct AND c.r = ((w.r - 1) % c.n_same) + 1
    WHERE NOT w.correct AND w.r <= $refine_k
),
sides AS (
    SELECT query_id,
           list(struct_pack(id := rollout_id, response := response, answer := pred_answer) ORDER BY r)
               FILTER (WHERE correct) AS good,
           list(struct_pack(id := rollout_id, response := response, answer := pred_answer) ORDER BY r)
               FILTER (WHERE NOT correct) AS bad
    FROM ranked GROUP BY query_id
),
draws AS (
    SELECT query_id, good, bad, j,
           CASE WHEN len(good) >= 2 AND len(bad) >= 2 THEN md5(query_id || ':' || $seed || ':' || j) < '8'
                ELSE len(good) >= 2 END AS two_good
    FROM sides, range(1, $select_k + 1) AS t(j)
    WHERE len(good) >= 1 AND len(bad) >= 1 AND len(good) + len(bad) >= 3
),
triples AS (
    SELECT query_id, j, CASE WHEN two_good THEN
               [struct_pack(c := true, x := good[((2 * j - 2) % len(good)) + 1]),
                struct_pack(c := true, x := good[((2 * j - 1) % len(good)) + 1]),
                struct_pack(c := false, x := bad[((j - 1) % len(bad)) + 1])]
           ELSE
               [struct_pack(c := true, x := good[((j - 1) % len(good)) + 1]),
                struct_pack(c := false, x := bad[((2 * j - 2) % len(bad)) + 1]),
                struct_pack(c := false, x := bad[((2 * j - 1) % len(bad)) + 1])]
           END AS cands
    FROM draws
),
shuffled AS (
    SELECT query_id, j,
           list_sort(list_transform(cands, lambda e: struct_pack(
               h := md5(e.x.id || ':' || $seed || ':' || j), c := e.c, x := e.x))) AS cands
    FROM triples
),
selects AS (
    SELECT 'select' AS kind, query_id, j,
           cands[list_position(list_transform(cands, lambda e: e.c), true)].x.id AS rollout_id,
           NULL :: VARCHAR AS response,
           list_transform(cands, lambda e: e.x.response) AS context,
           cands[list_position(list_transform(cands, lambda e: e.c), true)].x.answer AS answer,
           list_position(list_transform(cands, lambda e: e.c), true) :: INTEGER AS pick
    FROM shuffled
)
SELECT * FROM cot
UNION ALL SELECT * FROM refine
UNION ALL SELECT * FROM selects
ORDER BY query_id, kind, j
