-- Oracle pseudo-labels (the skyline): for each unlabelled query (split $split) sampled in run $run, iteration
-- $iteration, stage $stage, the true answer the store holds aside in queries.meta.held_out_answer (written by
-- `mstar ingest synthetic --unlabeled-fraction`; never read for training otherwise). The columns are those of
-- pseudo_labels_weighted_vote: the label's share of the (PRM-weighted) votes, answers compared as strings.
-- param stage = 'explore'
-- param split = 'unlabeled'
WITH samples AS (
    SELECT r.query_id, r.pred_answer, r.prm_score,
           json_extract_string(q.meta, '$.held_out_answer') AS label,
           sum((r.prm_score IS NOT NULL AND r.pred_answer IS NOT NULL)::INT)
               OVER (PARTITION BY r.query_id) AS n_scored
    FROM rollouts AS r
    JOIN queries AS q USING (query_id)
    WHERE r.run_id = $run AND r.iteration = $iteration AND r.stage = $stage AND q.split = $split
),
weighted AS (
    SELECT *, CASE WHEN pred_answer IS NULL THEN NULL
                   WHEN n_scored > 0 THEN coalesce(prm_score, 0.0) ELSE 1.0 END AS weight
    FROM samples
)
SELECT query_id,
       any_value(label) AS pseudo_answer,
       sum(weight) FILTER (WHERE pred_answer = label) / nullif(sum(weight), 0) AS vote_share,
       count(*) FILTER (WHERE pred_answer = label) AS n_votes,
       count(pred_answer) AS n_samples,
       any_value(n_scored)::BIGINT AS n_scored
FROM weighted
GROUP BY query_id
ORDER BY query_id
