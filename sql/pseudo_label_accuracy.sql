-- Pseudo-label quality per run and iteration, from `pseudo_labels` (one row per unlabelled query the loop
-- sampled): how many were sampled, the share that got a label (some sample gave an answer), the labels'
-- accuracy against the held-aside true answers (NULL where none is held) and their mean vote share. A
-- weighted-vote run and its oracle skyline line up by iteration.
SELECT run_id,
       iteration,
       array_to_string(list_sort(list(DISTINCT labeller)), ',') AS labeller,
       count(*)                                                AS n_unlabeled,
       avg((label IS NOT NULL)::INT)                           AS pseudo_label_coverage,
       avg(label_correct::INT)                                 AS pseudo_label_acc,
       count(label_correct)                                    AS n_label_checked,
       avg(vote_share)                                         AS mean_vote_share
FROM pseudo_labels
GROUP BY run_id, iteration
ORDER BY run_id, iteration
