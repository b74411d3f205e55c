-- One row per run (`mstar compare`): what the resolved recipe says it did (method, selection, PRM, temperature
-- policy, seed) and what it measured on val: start, final and best greedy accuracy, final Pass@K and
-- Reward-Pass@2, the faithful rate (tasks with a step checker: correct samples whose every step is true;
-- sql/dynamics.sql), the rows it trained on, and its wall time (every stage's seconds, summed over iterations).
WITH per_run AS (
    SELECT run_id,
           max(iteration)                                          AS iterations,
           arg_min(greedy_acc, iteration)                          AS start_greedy,
           arg_max(greedy_acc, iteration)                          AS final_greedy,
           max(greedy_acc)                                         AS best_greedy,
           arg_max(pass_at_k, iteration)                           AS final_pass_at_k,
           arg_max(k, iteration)                                   AS k,
           arg_max(reward_pass_at_2, iteration)                    AS final_reward_pass_at_2,
           arg_max(json_extract(metrics, '$.faithful_rate')::DOUBLE, iteration) AS final_faithful,
           sum(coalesce(n_train, 0))                               AS training_rows,
           sum(coalesce(list_sum(map_values(timings::JSON::MAP(VARCHAR, DOUBLE))), 0)) AS wall_s
    FROM iterations
    GROUP BY run_id
)
SELECT p.run_id,
       coalesce(json_extract_string(r.recipe, '$.run.method'), 'mstar')          AS family,
       json_extract_string(r.recipe, '$.train.method')                           AS train_method,
       json_extract_string(r.recipe, '$.select.view')                            AS view,
       json_extract(r.recipe, '$.select.k')::INTEGER                             AS select_k,
       json_extract(r.recipe, '$.select.alpha')::DOUBLE                          AS alpha,
       json_extract(r.recipe, '$.select.correct_only')::BOOLEAN                  AS correct_only,
       json_extract_string(r.recipe, '$.prm.path')                               AS prm,
       json_extract(r.recipe, '$.temperature.search_every')::INTEGER             AS search_every,
       json_extract(r.recipe, '$.temperature.t_min')::DOUBLE                     AS t_min,
       json_extract(r.recipe, '$.temperature.t_max')::DOUBLE                     AS t_max,
       json_extract(r.recipe, '$.sample.temperature')::DOUBLE                    AS temperature,
       json_extract(r.recipe, '$.run.seed')::BIGINT                              AS seed,
       r.recipe,
       p.* EXCLUDE (run_id)
FROM per_run AS p
LEFT JOIN runs AS r USING (run_id)
ORDER BY p.run_id
