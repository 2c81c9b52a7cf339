import sys, time, torch
sys.path.insert(0, "/tmp/gt")
torch.set_num_threads(1)
import lowres  # noqa: F401
from zoorank.api import rank
from zoorank.metrics.registry import METRICS
from zoorank.config import Settings
ds = ["digits", "mnist5k", "fashion_mnist", "animal_mnist", "emoji"]
t = time.time()
for d in ds:
    df = rank("default", d, per_class=20, split="train", seed=0, settings=Settings.from_env(), workers=2, metrics=[m for m in METRICS if m != "nleep"])
    df.to_csv(f"/tmp/gt/rank_{d}.csv", index=False)
    print(d, "done", round(time.time() - t), flush=True)
