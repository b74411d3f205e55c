-- Per query, $k responses at random (seeded by md5(rollout_id:$seed), the same draw trainset_top_k makes when
-- there are no PRM scores). With $correct_only = false, wrong answers are drawn too: the control that shows a
-- gain comes from selection, not from the extra training steps.
-- An unlabelled query has no gold verdict: its responses count as correct by pseudo_correct (docs/unlabeled.md).
-- param stage = 'explore'
-- param k = 2
-- param seed = 0
-- param correct_only = true
WITH picked AS (
    SELECT query_id,
           max_by({'rollout_id': rollout_id, 'row': _rowoffset, 'n_tokens': n_tokens,
                   'correct': correct},
                  {'scored': false, 'score': 0, 'tie': md5(rollout_id || ':' || $seed)}, $k) AS picks
    FROM rollouts
    WHERE run_id = $run AND iteration = $iteration AND stage = $stage
      AND (NOT $correct_only OR (coalesce(correct, pseudo_correct) = true AND format_ok = true))
    GROUP BY query_id
)
SELECT p.rollout_id, query_id, rank, p.row AS _text_row, p.n_tokens, p.correct
FROM (SELECT query_id, unnest(picks) AS p, generate_subscripts(picks, 1) AS rank FROM picked)
ORDER BY query_id, rank
