"""Fine-tune through a real Celery worker on CUDA: the check for a GPU machine.

    .venv/bin/python bench/gpu_check.py [--device cuda] [--epochs 8]

Self-contained: a throwaway SQLite database and media folder, and Kombu's
filesystem broker (no Redis needed), so it runs on a bare GPU machine. It imports
Adult, pre-trains on the source domain, queues a fine-tuning run on the `gpu` queue,
starts one worker process for that queue, waits, and prints the device the run
recorded, the time, and the child's held-out metrics. Exit status 1 if the run did
not succeed on the requested device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    for folder in ("in", "out", "processed", "control"):
        (work / "broker" / folder).mkdir(parents=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "MEDIA_ROOT": str(work / "media"),
        "GOVERNANCE_VAR_DIR": str(work),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_RESULT_BACKEND": f"file://{work / 'results'}",
        "CELERY_BROKER_FOLDER": str(work / "broker"),
        "TRAINING_DEVICE": args.device,
        "TRAINING_EPOCHS": str(args.epochs),
        "DJANGO_SETTINGS_MODULE": "governance.settings",
    }
    (work / "results").mkdir()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from governance.models import FineTuneRun
    from governance.services.datasets import dataset_import_file
    from governance.services.training import finetune_run_create, model_version_pretrain

    started = time.perf_counter()
    dataset = dataset_import_file(
        spec_path=ROOT / "data" / "specs" / "adult.toml", actor="gpu-check"
    )
    source = dataset.domains.get(name="source")
    target = dataset.domains.get(name="target")
    base = model_version_pretrain(domain=source, name="gpu-base", actor="gpu-check")
    pretrain_s = time.perf_counter() - started
    print(f"pre-trained on {base.training.get('device')} in {pretrain_s:.1f} s")

    from workers.command import worker_command

    worker = subprocess.Popen(
        worker_command("gpu-check", queues=("gpu",), loglevel="WARNING"),
        cwd=ROOT,
        env=env,
    )
    try:
        queued = time.perf_counter()
        run = finetune_run_create(parent=base, target=target, actor="gpu-check")
        while True:
            run.refresh_from_db()
            if run.is_terminal:
                break
            if worker.poll() is not None:
                print("the worker exited early", file=sys.stderr)
                return 1
            time.sleep(0.5)
        elapsed = time.perf_counter() - queued
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    child = run.produced_version
    print(
        json.dumps(
            {
                "state": run.state,
                "device": run.device,
                "finetune_seconds_from_queue": round(elapsed, 2),
                "samples_per_second": child.training.get("samples_per_second")
                if child
                else None,
                "child_metrics": {
                    domain: {"roc_auc": m.get("roc_auc"), "accuracy": m.get("accuracy")}
                    for domain, m in (child.metrics if child else {}).items()
                },
                "error": run.error,
            },
            indent=2,
        )
    )
    ok = run.state == FineTuneRun.State.SUCCEEDED and run.device == args.device
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
