-- Every correct, well-formed response (iterative RFT and ReST-EM train on all of them).
-- param stage = 'explore'
SELECT rollout_id, query_id, prm_score, response, n_tokens
FROM rollouts
WHERE run_id = $run AND iteration = $iteration AND stage = $stage
  AND correct = true AND format_ok = true
ORDER BY query_id, rollout_id
