import time, sys, json, torch
torch.set_num_threads(1)
from zoorank.data import load_dataset
cands = ["digits", "mnist5k", "fashion_mnist", "animal_mnist", "emoji", "openclipart", "scripts"]
ok = []
for d in cands:
    try:
        load_dataset(d); ok.append(d)
    except Exception as e:
        print("dataset", d, "does not load:", type(e).__name__, e, flush=True)
    if len(ok) == 5: break
print("datasets", ok, flush=True)
from zoorank.flows.ground_truth import run_ground_truth
from zoorank.finetune import Budget
from zoorank.config import Settings
s = Settings.from_env()
b = Budget(steps=10, batch_size=16, train_per_class=10, val_per_class=5, test_per_class=10, max_input_side=32, eval_every=0, bn="frozen")
t = time.time()
df, run = run_ground_truth("default", ok, grid=[(1e-1, 0.0), (1e-2, 0.0)], seeds=[0], budget=b, settings=s,
                           threads=1, workers=2, return_run_id=True)
df.to_csv("/tmp/gt/gt_table.csv", index=False)
print(df.to_string()); print("run", run, "seconds", time.time() - t, flush=True)
