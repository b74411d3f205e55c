-- The temperature search on val: per sampled temperature, Pass@K over the first $k samples and Reward-Pass@2
-- (a correct response among the PRM's top 2; NULL without PRM scores). The means of the per-query rows of
-- temperature_sweep_by_query (the loop decides on those: loop/temperature.py keeps the current T unless another
-- beats it beyond the noise).
-- param stage = 'temp-sweep'
-- param k = 4
SELECT temperature,
       count(*)              AS n_queries,
       avg(pass_k)           AS pass_at_k,
       avg(reward_pass_2)    AS reward_pass_at_2,
       avg(sample_acc)       AS sample_acc
FROM temperature_sweep_by_query
GROUP BY ALL
ORDER BY temperature
