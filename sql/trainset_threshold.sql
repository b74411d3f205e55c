-- Correct, well-formed responses whose PRM score is above $alpha (M-STAR's threshold variant).
-- An unlabelled query has no gold verdict: its responses count as correct by pseudo_correct (docs/unlabeled.md).
-- param stage = 'explore'
-- param alpha = 0.5
SELECT rollout_id, query_id, prm_score, response, n_tokens
FROM rollouts
WHERE run_id = $run AND iteration = $iteration AND stage = $stage
  AND coalesce(correct, pseudo_correct) = true AND format_ok = true
  AND prm_score > $alpha
ORDER BY query_id, prm_score DESC, rollout_id
