-- Pseudo-labels for the unlabelled queries (split $split) sampled in run $run, iteration $iteration, stage
-- $stage: per query, the answer with the largest PRM-weighted vote over the samples that gave one. Where a
-- query's samples carry PRM scores each weighs its score (an unscored one weighs 0); where none does, each
-- weighs 1 (a majority vote). Ties go to the more frequent answer, then to the smaller string, so the result is
-- deterministic. `mstar evolve` reads it at a pinned rollouts version and keeps every label in `pseudo_labels`.
-- param stage = 'explore'
-- param split = 'unlabeled'
WITH samples AS (
    SELECT r.query_id, r.pred_answer, r.prm_score,
           sum((r.prm_score IS NOT NULL)::INT) OVER (PARTITION BY r.query_id) AS n_scored
    FROM rollouts AS r
    JOIN queries AS q USING (query_id)
    WHERE r.run_id = $run AND r.iteration = $iteration AND r.stage = $stage
      AND q.split = $split AND r.pred_answer IS NOT NULL
),
votes AS (
    SELECT query_id, pred_answer,
           sum(CASE WHEN n_scored > 0 THEN coalesce(prm_score, 0.0) ELSE 1.0 END) AS weight,
           count(*) AS n_votes,
           any_value(n_scored) AS n_scored
    FROM samples
    GROUP BY query_id, pred_answer
)
SELECT query_id,
       pred_answer AS pseudo_answer,
       weight / nullif(sum(weight) OVER (PARTITION BY query_id), 0) AS vote_share,
       n_votes,
       (sum(n_votes) OVER (PARTITION BY query_id))::BIGINT AS n_samples,
       n_scored::BIGINT AS n_scored
FROM votes
QUALIFY row_number() OVER (PARTITION BY query_id ORDER BY weight DESC, n_votes DESC, pred_answer) = 1
ORDER BY query_id
