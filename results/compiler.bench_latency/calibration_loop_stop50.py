import os, torch
from provenml.compiler.experiments import EndToEndConfig, run_case
torch.set_num_threads(2)
cfg = EndToEndConfig(cases=("transformer:1",), arms=("eager", "inductor", "provenml"), ablations=(), threads=2, repeat=9, min_time=0.05, tuning=True, runtime="pool")
for i in range(10):
    res = run_case(cfg, "transformer:1")
    lat = res["latency"]; st = res["pool_stats"]["provenml"]
    thr = [l for l in res["tuning_log"] if l.startswith(("threads", "fallback"))]
    print(f"{i}: pm/eager {lat['provenml']/lat['eager']:.2f} pm {lat['provenml']*1e6:.0f} us; team {st['team']} alone {st['alone']} lost {st['lost']} backoff {st['backoff']} skipped {st['skipped']} alone_ns {st['alone_ns']} team_ns {st['team_ns']} ratio {st['ratio_permille']} scale {st['scale_permille']}; {thr}; load {os.getloadavg()[0]:.2f}", flush=True)
