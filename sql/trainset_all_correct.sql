-- Every correct, well-formed response (iterative RFT and ReST-EM train on all of them).
-- An unlabelled query has no gold verdict: its responses count as correct by pseudo_correct (docs/unlabeled.md).
-- param stage = 'explore'
SELECT rollout_id, query_id, prm_score, response, n_tokens
FROM rollouts
WHERE run_id = $run AND iteration = $iteration AND stage = $stage
  AND coalesce(correct, pseudo_correct) = true AND format_ok = true
ORDER BY query_id, rollout_id
