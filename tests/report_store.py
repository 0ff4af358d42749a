"""A store that looks like this project's real results (no training): study A's ten models, the
small CNNs of studies B, D and E, a few Fashion-MNIST runs and a README-style quick look.

Figures are the committed benchmark results (benchmarks/results/*.md), so the report's plots
are tried on the clusters real runs make: the small CNNs near 99.3% and 18k parameters, study
A's top row near 98.8%.
"""

from __future__ import annotations

from pathlib import Path

from mnistbench.experiments.configure import make_config
from mnistbench.store import Store

CPU_ENV = {
    "device": "cpu",
    "device_name": "AMD EPYC",
    "cpu_capability": "AVX512",
    "cpu_native_bf16": True,
    "torch_version": "2.13.0",
    "python_version": "3.11.7",
    "torch_threads": 2,
    "mnistbench_version": "0.1.0",
    "git_sha": "5ae60b7",
}
ESTIMATED = "codecarbon CPU(Cpu Load), RAM(tracking_mode='process')"

# model: (params, time per epoch s, test acc @ best val, max over epochs, final)
MNIST = {
    "microresnet": (174_970, 29.27, 0.9916, 0.9916, 0.9911),
    "cnn": (206_922, 4.48, 0.9882, 0.9882, 0.9882),
    "snn": (206_922, 135.0, 0.9869, 0.9869, 0.9869),
    "dbn": (671_002, 1.99, 0.9839, 0.9841, 0.9839),
    "simsiam_lgbm": (8_755_200, 68.9, 0.9787, 0.9787, 0.9787),
    "mlp": (535_818, 1.01, 0.9724, 0.9743, 0.9743),
    "vit": (540_170, 132.0, 0.9781, 0.9781, 0.9781),
    "gan": (2_019_857, 9.90, 0.9530, 0.9530, 0.9530),
    "unet": (1_864_257, 298.0, 0.9465, 0.9465, 0.9465),
    "beta_vae": (652_824, 1.84, 0.8775, 0.8806, 0.8806),
    "small_cnn_bn": (18_278, 41.40, 0.9948, 0.9952, 0.9949),
    "small_cnn_v2": (17_938, 22.48, 0.9934, 0.9934, 0.9930),
    "small_cnn_v1": (17_938, 22.72, 0.9922, 0.9926, 0.9926),
    "cnn_small": (34_826, 10.92, 0.9909, 0.9912, 0.9909),
    "mlp_784_512": (407_050, 1.41, 0.9756, 0.9764, 0.9756),
    "rnn_rows": (21_514, 4.38, 0.9635, 0.9635, 0.9635),
    "gru_rows": (61_962, 11.51, 0.9851, 0.9851, 0.9851),
    "lstm_rows": (82_186, 7.30, 0.9863, 0.9863, 0.9863),
    "diet_4": (7_904, 11.70, 0.9937, 0.9937, 0.9937),
    "diet_3": (10_970, 18.23, 0.9907, 0.9914, 0.9905),
    "diet_2": (10_790, 10.50, 0.9862, 0.9870, 0.9862),
}
FASHION = {
    "small_cnn_bn": (18_278, 40.1, 0.9121, 0.9135, 0.9118),
    "cnn_small": (34_826, 10.6, 0.9032, 0.9040, 0.9030),
    "mlp_784_512": (407_050, 1.40, 0.8841, 0.8850, 0.8841),
    "vit": (540_170, 129.0, 0.8610, 0.8610, 0.8610),
}
POWER_W = 24.0  # CodeCarbon's TDP/RAM model on the VM: energy = this × time


def write_run(store: Store, config, figures: tuple, *, env: dict | None = None) -> int:
    """One finished run as run_config records it, from (params, s/epoch, honest, max, final)."""
    params, time_s, honest, best, final = figures
    run_id = store.start_run(config.to_dict(), config.config_hash(), env or CPU_ENV)
    epochs = config.epochs
    for epoch in range(1, epochs + 1):
        lag = 0.002 * (epochs - epoch)
        store.log_epoch(
            run_id,
            epoch,
            {"train_loss": 0.4 / epoch, "val_accuracy": honest - lag, "test_accuracy": best - lag,
             "train_time_s": time_s},
        )  # fmt: skip
    total_s = time_s * epochs
    store.finish_run(
        run_id,
        "finished",
        {
            "epochs_completed": epochs,
            "test_accuracy": final,
            "test_accuracy_at_best_val": honest,
            "best_test_accuracy": best,
            "params": params,
            "time_per_epoch_s": time_s,
            "total_train_time_s": total_s,
            "wall_time_s": 1.2 * total_s,
            "energy_kwh": POWER_W * 1.2 * total_s / 3.6e6,
            "energy_method": ESTIMATED,
        },
    )
    return run_id


def realistic_store(path: Path) -> Path:
    with Store(path) as store:
        for model, figures in MNIST.items():
            write_run(store, make_config(model), figures)
        for model, figures in FASHION.items():
            write_run(store, make_config(model, dataset="fashion-mnist"), figures)
        # the README's quick look: one epoch on 2,000 images
        write_run(
            store,
            make_config("microresnet", subset=2000, epochs=1),
            (174_970, 3.82, 0.1315, 0.1315, 0.1315),
        )
    return path
