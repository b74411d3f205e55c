-- Per query, the top $k correct, well-formed responses by PRM score (M-STAR's selection). Ties, and the case
-- with no PRM scores at all, are broken by md5(rollout_id:$seed): K correct responses at random, reproducibly.
-- One top-N aggregation per query over narrow columns carries each winner's row offset; `_text_row` is
-- replaced by the response of just those rows after the query (late materialisation, sql_views.py).
-- An unlabelled query has no gold verdict: its responses count as correct by pseudo_correct (docs/unlabeled.md).
-- param stage = 'explore'
-- param k = 2
-- param seed = 0
WITH picked AS (
    SELECT query_id,
           max_by({'rollout_id': rollout_id, 'prm_score': prm_score, 'row': _rowoffset, 'n_tokens': n_tokens},
                  {'scored': prm_score IS NOT NULL, 'score': coalesce(prm_score, 0),
                   'tie': md5(rollout_id || ':' || $seed)}, $k) AS picks
    FROM rollouts
    WHERE run_id = $run AND iteration = $iteration AND stage = $stage
      AND coalesce(correct, pseudo_correct) = true AND format_ok = true
    GROUP BY query_id
)
SELECT p.rollout_id, query_id, rank, p.prm_score, p.row AS _text_row, p.n_tokens
FROM (SELECT query_id, unnest(picks) AS p, generate_subscripts(picks, 1) AS rank FROM picked)
ORDER BY query_id, rank
