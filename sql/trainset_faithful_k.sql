-- Per query, $k correct, well-formed responses chosen by the task's step checker instead of a PRM: those whose
-- every step is true first, then the larger share of true steps, ties broken by md5(rollout_id:$seed). The
-- skyline of a PRM that sees every wrong step, for tasks with a checker (rollouts.steps_valid; docs/prm.md);
-- without one every response ties, and this is seeded random-K among the correct. Same columns as
-- sql/trainset_top_k.sql (prm_score is NULL: no PRM is read), plus the share of true steps.
-- param stage = 'explore'
-- param k = 2
-- param seed = 0
WITH picked AS (
    SELECT query_id,
           max_by({'rollout_id': rollout_id, 'row': _rowoffset, 'n_tokens': n_tokens,
                   'valid_share': list_sum(steps_valid::INT[]) / nullif(len(steps_valid), 0)},
                  {'faithful': coalesce(list_bool_and(steps_valid), false),
                   'share': coalesce(list_sum(steps_valid::INT[]) / nullif(len(steps_valid), 0), 0),
                   'tie': md5(rollout_id || ':' || $seed)}, $k) AS picks
    FROM rollouts
    WHERE run_id = $run AND iteration = $iteration AND stage = $stage
      AND coalesce(correct, pseudo_correct) = true AND format_ok = true
    GROUP BY query_id
)
SELECT p.rollout_id, query_id, rank, NULL::FLOAT AS prm_score, p.row AS _text_row, p.n_tokens,
       p.valid_share AS steps_valid_share
FROM (SELECT query_id, unnest(picks) AS p, generate_subscripts(picks, 1) AS rank FROM picked)
ORDER BY query_id, rank
